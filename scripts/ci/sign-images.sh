#!/usr/bin/env bash
# Keyless-sign each pushed image and attach its CycloneDX SBOM as a signed attestation. The
# digest is the multi-platform index's (push-images.sh), so the index is what is signed: a
# verifier pulling the tag on either platform checks the signature of the index it resolved.
#
#   scripts/ci/sign-images.sh IMAGES_FILE SBOM_DIR
#
# IMAGES_FILE is the file written by push-images.sh (<name> <tag ref> <digest ref>).
# cosign picks up the workflow's OIDC token (permissions: id-token: write) and gets a
# short-lived Fulcio certificate bound to this workflow; signatures are logged in Rekor.
# Everything is done by digest, never by tag.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

images_file=${1:?usage: $0 IMAGES_FILE SBOM_DIR}
sbom_dir=${2:?usage: $0 IMAGES_FILE SBOM_DIR}
require_cmd cosign
[[ -s "$images_file" ]] || die "$images_file is empty"

while read -r name _tag_ref digest_ref; do
  [[ "$digest_ref" == *@sha256:* ]] || die "not a digest reference: $digest_ref"
  sbom="$sbom_dir/$name.cdx.json"
  [[ -s "$sbom" ]] || die "missing SBOM $sbom"

  log "signing $digest_ref"
  cosign sign --yes "$digest_ref"

  log "attesting the CycloneDX SBOM of $name"
  cosign attest --yes --type cyclonedx --predicate "$sbom" "$digest_ref"
done <"$images_file"

summary "" "Images signed keylessly; verify with:" "" \
  '```' \
  "cosign verify --certificate-identity-regexp '^https://github.com/${GITHUB_REPOSITORY:-OWNER/REPO}/.github/workflows/ci.yml@' \\" \
  "  --certificate-oidc-issuer https://token.actions.githubusercontent.com IMAGE@DIGEST" \
  '```'
