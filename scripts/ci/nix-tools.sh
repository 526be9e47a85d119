#!/usr/bin/env bash
# Put tools from the flake's *locked* nixpkgs on PATH for the rest of the job, so CI uses the
# same kubectl/skopeo/jq versions as `nix develop` instead of whatever the runner image ships.
#
#   scripts/ci/nix-tools.sh kubectl skopeo jq
#
# Each argument is a nixpkgs attribute; its bin/ directory is added to $GITHUB_PATH.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || die "usage: $0 ATTR..."
require_cmd nix

installables=()
for attr in "$@"; do
  [[ "$attr" =~ ^[A-Za-z0-9_.+-]+$ ]] || die "not a nixpkgs attribute: $attr"
  installables+=("nixpkgs#$attr")
done

log "building ${*} from the flake's locked nixpkgs"
mapfile -t outs < <(nix build --no-link --print-out-paths --inputs-from . "${installables[@]}")

added=0
for out in "${outs[@]}"; do
  if [[ -d "$out/bin" ]]; then
    gh_path "$out/bin"
    added=$((added + 1))
  fi
done
((added > 0)) || die "no bin/ directory in: ${outs[*]}"

for attr in "$@"; do
  case "$attr" in
    kubectl) kubectl version --client=true 2>/dev/null | head -n1 >&2 || true ;;
    skopeo) skopeo --version >&2 ;;
    jq) jq --version >&2 ;;
  esac
done
