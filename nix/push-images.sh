#!/usr/bin/env bash
# nix run .#push-images -- REGISTRY [EXTRA_TAG...]
#
# Pushes REGISTRY/{api-gateway,user-service,redis}:<content-hash tag> and, for
# each EXTRA_TAG (git sha, branch name, ...), REGISTRY/<name>:<EXTRA_TAG>, with
# skopeo: no Docker daemon needed. REGISTRY may also come from $REGISTRY.
# Example: nix run .#push-images -- ghcr.io/users-platform "$GITHUB_SHA" main
#
# Credentials are never passed on the command line:
#  - log in beforehand (`skopeo login ghcr.io`, `docker login`), or
#  - set REGISTRY_USERNAME and REGISTRY_PASSWORD: the script logs in with
#    --password-stdin into a temporary auth file that is deleted afterwards.
#
# Provided by the flake (runtimeEnv of the app):
#   UP_IMAGES  lines "<name> <image name> <tag> <stream script>"
set -euo pipefail

usage() {
  echo "usage: push-images REGISTRY [EXTRA_TAG...]   (e.g. ghcr.io/users-platform)" >&2
  exit 2
}

registry=${1:-${REGISTRY:-}}
[[ -n $registry ]] || usage
[[ $# -gt 0 ]] && shift
registry=${registry%/}
images=${UP_IMAGES:?UP_IMAGES is not set; run this through nix run .#push-images}

tag_re='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
extra_tags=()
for tag in "$@"; do
  # Branch names like feature/x are common: map characters a tag cannot hold.
  tag=${tag//\//-}
  [[ $tag =~ $tag_re ]] || { echo "push-images: '$tag' is not a valid image tag" >&2; exit 2; }
  extra_tags+=("$tag")
done

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# The archives come from our own Nix store; accept them without signature policy.
policy="$workdir/policy.json"
printf '%s\n' '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"

auth_args=()
if [[ -n ${REGISTRY_USERNAME:-} && -n ${REGISTRY_PASSWORD:-} ]]; then
  authfile="$workdir/auth.json"
  printf '%s' "$REGISTRY_PASSWORD" |
    skopeo login --authfile "$authfile" --username "$REGISTRY_USERNAME" --password-stdin "${registry%%/*}"
  auth_args=(--dest-authfile "$authfile")
fi

while read -r name image_name tag stream; do
  [[ -n $name ]] || continue
  archive="$workdir/$name.tar"
  echo "==> $image_name:$tag" >&2
  "$stream" >"$archive"
  dest="$registry/$name"
  skopeo --policy "$policy" copy --retry-times 3 "${auth_args[@]}" \
    --digestfile "$workdir/$name.digest" \
    "docker-archive:$archive" "docker://$dest:$tag"
  for extra in "${extra_tags[@]}"; do
    # Same manifest under another tag; the registry already has every blob.
    skopeo --policy "$policy" copy --retry-times 3 "${auth_args[@]}" \
      "docker-archive:$archive" "docker://$dest:$extra"
  done
  echo "pushed $dest:$tag@$(cat "$workdir/$name.digest")${extra_tags[*]:+ (also tagged ${extra_tags[*]})}"
  rm -f "$archive"
done <<<"$images"
