#!/usr/bin/env bash
# Update every flake input and write a pull-request body describing what moved.
#
#   scripts/ci/flake-update.sh BODY_FILE
#
# Step output `changed` is true when flake.lock changed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

body=${1:?usage: $0 BODY_FILE}
require_cmd nix jq git
[[ -f flake.lock ]] || die "run from the repository root (no flake.lock here)"

work=$(tmp_dir)
cp flake.lock "$work/before.json"
nix flake update
cp flake.lock "$work/after.json"

if cmp -s "$work/before.json" "$work/after.json"; then
  log "flake.lock is already up to date"
  gh_output changed false
  exit 0
fi

# One table row per locked input whose revision or hash moved.
rows=$(jq -r --slurpfile before "$work/before.json" '
  .nodes as $after
  | ($before[0].nodes) as $old
  | $after | to_entries[]
  | select(.key != "root" and (.value.locked // null) != null)
  | .key as $k | .value.locked as $new | ($old[$k].locked // {}) as $prev
  | select(($new.rev // $new.narHash) != ($prev.rev // $prev.narHash))
  | "| \($k) | \(($prev.rev // $prev.narHash // "new")[0:12]) | \(($new.rev // $new.narHash)[0:12]) | \(($new.lastModified // 0) | todate) |"
' "$work/after.json")

{
  cat <<'MD'
Automated weekly `nix flake update`.

| input | from | to | last modified |
|---|---|---|---|
MD
  printf '%s\n' "$rows"
  cat <<'MD'

CI runs `nix flake check -L` on this PR: every scripts/check stage plus the Nix builds.
The Rust toolchain does not move with this update: bump it by changing the `channel` line of
rust-toolchain.toml (the new rust-overlay must list that release), then run scripts/check.
Merging it rebuilds the images: new content-hash tags, a new Trivy scan and SBOM.
MD
} >"$body"
cat "$body" >&2
gh_output changed true
