#!/usr/bin/env bash
# nix run .#push-images -- REGISTRY [EXTRA_TAG...]
#
# Publishes REGISTRY/{api-gateway,user-service,redis}:<index tag>, each a
# multi-platform image (an OCI index / manifest list) of its linux/amd64 and
# linux/arm64 images, plus each EXTRA_TAG (git sha, branch name, ...) on the same
# index. No Docker daemon is needed. REGISTRY may also come from $REGISTRY.
# Example: nix run .#push-images -- ghcr.io/users-platform "sha-$short" main
#
#  1. every platform's image is pushed with skopeo as REGISTRY/<name>:<index tag>-<arch>;
#  2. manifest-tool assembles the index from them under REGISTRY/<name>:<index tag>
#     (`push from-args --platforms ... --template ...-ARCH --target ...`);
#  3. skopeo copies the whole index (--all) to each extra tag.
# The index tag is a hash of the members' own content-hash tags (nix/images.nix), so
# it is reproducible: the same commit always publishes the same tag. Each line
# "pushed REGISTRY/<name>:<index tag>@sha256:..." gives the index's digest, which is
# what deploys pin and what signing signs.
#
# Credentials are never passed on the command line:
#  - log in beforehand with `docker login` (skopeo and manifest-tool both read
#    ~/.docker/config.json), or
#  - set REGISTRY_USERNAME and REGISTRY_PASSWORD: the script logs in with
#    --password-stdin into a temporary auth file that both tools use and that is
#    deleted afterwards.
#
# Provided by the flake (runtimeEnv of the app):
#   UP_IMAGE_INDEXES  lines "<name> <image name> <index tag> <arch>=<stream script>..."
set -euo pipefail

usage() {
  echo "usage: push-images REGISTRY [EXTRA_TAG...]   (e.g. ghcr.io/users-platform)" >&2
  exit 2
}

registry=${1:-${REGISTRY:-}}
[[ -n $registry ]] || usage
[[ $# -gt 0 ]] && shift
registry=${registry%/}
indexes=${UP_IMAGE_INDEXES:?UP_IMAGE_INDEXES is not set; run this through nix run .#push-images}

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

skopeo_auth=()
manifest_tool_auth=()
if [[ -n ${DOCKER_CONFIG:-} ]]; then
  # A login done before (e.g. scripts/ci/registry-login.sh) in a config.json of its own.
  manifest_tool_auth=(--docker-cfg "$DOCKER_CONFIG")
fi
if [[ -n ${REGISTRY_USERNAME:-} && -n ${REGISTRY_PASSWORD:-} ]]; then
  # Same format as Docker's config.json, so manifest-tool reads it too.
  mkdir -p "$workdir/docker"
  authfile="$workdir/docker/config.json"
  printf '%s' "$REGISTRY_PASSWORD" |
    skopeo login --authfile "$authfile" --username "$REGISTRY_USERNAME" --password-stdin "${registry%%/*}"
  skopeo_auth=(--authfile "$authfile")
  manifest_tool_auth=(--docker-cfg "$workdir/docker")
fi

while read -r name image_name index_tag members; do
  [[ -n $name ]] || continue
  dest="$registry/$name"
  platforms=()
  for member in $members; do
    arch=${member%%=*}
    stream=${member#*=}
    archive="$workdir/$name-$arch.tar"
    echo "==> $image_name ($arch) as $dest:$index_tag-$arch" >&2
    "$stream" >"$archive"
    skopeo --policy "$policy" copy --retry-times 3 "${skopeo_auth[@]}" \
      "docker-archive:$archive" "docker://$dest:$index_tag-$arch"
    rm -f "$archive"
    platforms+=("linux/$arch")
  done
  platform_list=$(IFS=,; echo "${platforms[*]}")
  echo "==> $dest:$index_tag: index of $platform_list" >&2
  manifest-tool "${manifest_tool_auth[@]}" push from-args \
    --platforms "$platform_list" \
    --template "$dest:$index_tag-ARCH" \
    --target "$dest:$index_tag"
  # The digest of the index itself (skopeo inspect without --raw would resolve it
  # to this machine's platform image).
  skopeo inspect --raw --retry-times 3 "${skopeo_auth[@]}" "docker://$dest:$index_tag" >"$workdir/$name.index.json"
  digest=$(skopeo manifest-digest "$workdir/$name.index.json")
  for extra in "${extra_tags[@]}"; do
    # The same index (and so the same digest) under another tag.
    skopeo --policy "$policy" copy --all --retry-times 3 "${skopeo_auth[@]}" \
      "docker://$dest:$index_tag" "docker://$dest:$extra"
  done
  echo "pushed $dest:$index_tag@$digest${extra_tags[*]:+ (also tagged ${extra_tags[*]})}"
done <<<"$indexes"
