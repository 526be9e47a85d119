#!/usr/bin/env bash
# Push the three images (each a multi-platform index of its amd64 and arm64 images) and
# record what was pushed.
#
#   scripts/ci/push-images.sh ghcr.io/OWNER SHORT_SHA BRANCH OUT_FILE
#
# Runs `nix run .#push-images -- REGISTRY sha-<short> <branch>`: the app always pushes the
# Nix content-hash tag of the index (derived from its members' tags) and adds the extra tags. `latest` is never pushed. Afterwards each
# image is resolved to its digest, so signing and attestation target the immutable digest.
#
# OUT_FILE gets one line per image:  <name> <registry>/<name>:<content-hash tag> <registry>/<name>@sha256:...
# Step outputs: `images` (that file's content) and `tags` (name:content-hash, space separated).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

registry=${1:?usage: $0 REGISTRY SHORT_SHA BRANCH OUT_FILE}
short_sha=${2:?usage: $0 REGISTRY SHORT_SHA BRANCH OUT_FILE}
branch=${3:?usage: $0 REGISTRY SHORT_SHA BRANCH OUT_FILE}
out_file=${4:?usage: $0 REGISTRY SHORT_SHA BRANCH OUT_FILE}
images=${EXPECTED_IMAGES:-api-gateway user-service redis}
require_cmd nix skopeo

# Registry paths must be lowercase (GitHub owners may not be).
registry=${registry,,}
[[ "$short_sha" =~ ^[0-9a-f]{7,40}$ ]] || die "not a commit hash: $short_sha"
# A branch name is not always a valid tag: keep [A-Za-z0-9_.-], map the rest to '-'.
branch_tag=$(printf '%s' "$branch" | tr -c 'A-Za-z0-9_.-' '-' | cut -c1-128)
[[ "$branch_tag" != latest ]] || die "refusing to push the tag 'latest'"
sha_tag="sha-$short_sha"

log "pushing to $registry with extra tags $sha_tag $branch_tag"
work=$(tmp_dir)
push_log=$work/push.log
nix run .#push-images -- "$registry" "$sha_tag" "$branch_tag" | tee "$push_log"

: >"$out_file"
tags=()
for name in $images; do
  repo="$registry/$name"
  # The digest of the multi-platform index itself: `skopeo inspect` without --raw would
  # resolve the index to this runner's platform image, and we sign and deploy the index.
  skopeo inspect --raw "docker://$repo:$sha_tag" >"$work/$name.index.json"
  digest=$(skopeo manifest-digest "$work/$name.index.json")
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "could not resolve $repo:$sha_tag to a digest"
  # The content-hash tag is the one ref the app printed for this repository that is not one
  # of our extra tags.
  content_ref=$(grep -oE "$repo:[A-Za-z0-9_.-]+" "$push_log" |
    grep -vE ":($sha_tag|$branch_tag)\$" | sort -u | head -n1 || true)
  if [[ -z "$content_ref" ]]; then
    warn "push-images printed no content-hash tag for $name; recording the digest only"
    content_ref="$repo:$sha_tag"
  fi
  printf '%s %s %s@%s\n' "$name" "$content_ref" "$repo" "$digest" >>"$out_file"
  tags+=("$name:${content_ref##*:}")
done

cat "$out_file" >&2
summary "### Pushed images" "" "| image | tag | digest |" "|---|---|---|"
while read -r name ref pinned; do
  summary "| $name | \`${ref##*:}\` (+ \`$sha_tag\`, \`$branch_tag\`) | \`${pinned##*@}\` |"
done <"$out_file"

gh_output images "$(cat "$out_file")"
gh_output tags "${tags[*]}"
