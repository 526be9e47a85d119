#!/usr/bin/env bash
# Turn the stream scripts of `nix build .#images` into docker-archive tarballs for scanning.
#
#   scripts/ci/image-archives.sh ./result ./dist/images
#
# `packages.images` is a directory holding one executable per image and platform (api-gateway,
# user-service, redis for the build machine's platform, <name>-amd64 and <name>-arm64);
# running one writes that image as a docker-archive tarball to stdout.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

images_dir=${1:?usage: $0 IMAGES_DIR OUT_DIR}
out_dir=${2:?usage: $0 IMAGES_DIR OUT_DIR}
# `<name>` is the runner's platform (the images job runs on amd64), `<name>-arm64` the arm64
# member of the same published index: both are scanned, and `<name>`'s SBOM is attested.
expected=${EXPECTED_IMAGES:-api-gateway user-service redis api-gateway-arm64 user-service-arm64 redis-arm64}

[[ -d "$images_dir" ]] || die "$images_dir is not a directory (did 'nix build .#images' run?)"
mkdir -p "$out_dir"

for name in $expected; do
  stream="$images_dir/$name"
  [[ -x "$stream" ]] || die "missing stream script $stream"
  log "writing $out_dir/$name.tar"
  "$stream" >"$out_dir/$name.tar"
  # A docker-archive always has a manifest.json at its top level.
  tar -tf "$out_dir/$name.tar" manifest.json >/dev/null ||
    die "$out_dir/$name.tar is not a docker-archive"
  printf '%s\t%s\n' "$name" "$(du -h "$out_dir/$name.tar" | cut -f1)" >&2
done
