#!/usr/bin/env bash
# Scan the image archives with Trivy and write a CycloneDX SBOM for each.
#
#   scripts/ci/scan-images.sh ./dist/images ./dist/reports
#
# For every ARCHIVE_DIR/<name>.tar it writes REPORT_DIR/<name>.cdx.json (SBOM) and
# REPORT_DIR/<name>.trivy.json (full vulnerability report, all severities), prints a table,
# and fails when any image has a HIGH or CRITICAL vulnerability that has a fix available
# (--ignore-unfixed: an unfixable finding must not block every deploy; it stays in the report).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

archive_dir=${1:?usage: $0 ARCHIVE_DIR REPORT_DIR}
report_dir=${2:?usage: $0 ARCHIVE_DIR REPORT_DIR}
severity=${TRIVY_FAIL_SEVERITY:-HIGH,CRITICAL}
require_cmd trivy
mkdir -p "$report_dir"

shopt -s nullglob
archives=("$archive_dir"/*.tar)
((${#archives[@]} > 0)) || die "no *.tar archives in $archive_dir"

# Download the vulnerability DB once, not once per image.
trivy image --download-db-only --quiet

failed=()
summary "### Trivy ($severity, fixable only)" "" "| image | result |" "|---|---|"
for archive in "${archives[@]}"; do
  name=$(basename "$archive" .tar)
  log "SBOM for $name"
  trivy image --input "$archive" --skip-db-update --quiet \
    --format cyclonedx --output "$report_dir/$name.cdx.json"

  log "vulnerability report for $name (all severities, for the record)"
  trivy image --input "$archive" --skip-db-update --quiet --scanners vuln \
    --format json --output "$report_dir/$name.trivy.json"

  log "gate for $name: $severity with a fix available"
  if trivy image --input "$archive" --skip-db-update --quiet --scanners vuln \
    --severity "$severity" --ignore-unfixed --exit-code 1 --format table; then
    summary "| $name | ok |"
  else
    summary "| $name | **fixable $severity vulnerabilities** |"
    failed+=("$name")
  fi
done

if ((${#failed[@]} > 0)); then
  die "fixable $severity vulnerabilities in: ${failed[*]} (update flake.lock / Cargo.lock and rebuild)"
fi
log "no fixable $severity vulnerabilities"
