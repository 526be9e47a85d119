#!/usr/bin/env bash
# Render the manifests of one environment with the images pinned by the digests the images job
# pushed: `image: <registry>/<name>:<content-hash tag>@sha256:<digest>`.
#
#   scripts/ci/render-pinned.sh ENV OUT_FILE
#
#   ENV       dev | prod
#   OUT_FILE  a JSON `v1 List` of the objects in apply order (kubectl applies JSON as it does YAML)
#
# Environment:
#   PUSHED_IMAGES  the images job's `images` output, one line per image:
#                  "<name> <registry>/<name>:<tag> <registry>/<name>@sha256:<digest>"
#   IMAGE_REFS     optional: the JSON of `nix eval --json .#imageRefs` (computed when unset)
#   KUBENIX_SRC, NIXPKGS_LIB_SRC  optional source trees (offline, as scripts/render-manifests)
#
# The render is the same evaluation as the golden files (k8s/tools/eval.nix with the flake's
# locked kubenix and nixpkgs), with these references instead of the placeholders. Every tag must
# be the content-hash tag this commit's flake computes (`nix eval .#imageRefs`), so the deploy
# can only run what this commit built, scanned and signed. Then k8s/policy/policy.py runs on the
# result (image-no-digest and the other rules): what is applied is what the checks approved.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_name=${1:?usage: $0 dev|prod OUT_FILE}
out=${2:?usage: $0 dev|prod OUT_FILE}
case "$env_name" in dev | prod) ;; *) die "unknown environment $env_name (dev|prod)" ;; esac
require_cmd nix-instantiate jq python3
require_env PUSHED_IMAGES
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

work=$(tmp_dir)
if [[ -n "${IMAGE_REFS:-}" ]]; then
  printf '%s\n' "$IMAGE_REFS" >"$work/refs.json"
else
  require_cmd nix
  nix eval --json .#imageRefs >"$work/refs.json"
fi

# name -> "<registry>/<name>:<tag>@sha256:<digest>", checked against this commit's tags.
echo '{}' >"$work/images.json"
while read -r name ref pinned; do
  [[ -n "$name" ]] || continue
  digest=${pinned##*@}
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no digest for $name in the images output: '$pinned'"
  want_tag=$(jq -r --arg n "$name" '.[$n] // "" | sub("^.*:"; "")' "$work/refs.json")
  [[ -n "$want_tag" ]] || die "the flake has no image $name (nix eval .#imageRefs)"
  [[ "${ref##*:}" == "$want_tag" ]] ||
    die "pushed $name tag ${ref##*:} is not this commit's content-hash tag $want_tag"
  jq --arg n "$name" --arg r "$ref@$digest" '. + {($n): $r}' "$work/images.json" >"$work/next.json"
  mv "$work/next.json" "$work/images.json"
  log "$name -> $ref@$digest"
done <<<"$PUSHED_IMAGES"
missing=$(jq -r --slurpfile got "$work/images.json" 'keys - ($got[0] | keys) | join(" ")' "$work/refs.json")
[[ -z "$missing" ]] || die "the images output lacks: $missing"

nix-instantiate --eval --strict --json \
  --option extra-experimental-features 'nix-command flakes' \
  --argstr root "$root" --argstr env "$env_name" \
  --argstr kubenixSrc "${KUBENIX_SRC:-}" --argstr nixpkgsLibSrc "${NIXPKGS_LIB_SRC:-}" \
  --argstr imagesJSON "$(jq -c . "$work/images.json")" \
  "$root/k8s/tools/eval.nix" >"$work/objects.json"
jq '{apiVersion: "v1", kind: "List", items: .}' "$work/objects.json" >"$out"

# The policy engine on exactly what will be applied (PyYAML: the runner's python3-yaml).
python3 "$root/k8s/policy/policy.py" "$out" ||
  die "the policy engine reports findings on the rendered $env_name manifests"
log "rendered $(jq '.items | length' "$out") objects for $env_name into $out"
rm -rf "$work"
