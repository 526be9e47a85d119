#!/usr/bin/env bash
# Write the kubeconfig held (base64-encoded) in a GitHub secret to a private temp file and
# point KUBECONFIG at it for the rest of the job.
#
#   KUBECONFIG_B64=${{ secrets.KUBECONFIG_PROD }} scripts/ci/kubeconfig.sh
#
# The content is never printed. The file lives under RUNNER_TEMP, which the runner wipes
# after the job.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env KUBECONFIG_B64
dir=$(tmp_dir)
chmod 700 "$dir"
file="$dir/kubeconfig"
(
  umask 077
  printf '%s' "$KUBECONFIG_B64" | base64 --decode >"$file"
) || die "the kubeconfig secret is not valid base64 (encode it with: base64 -w0 kubeconfig)"

[[ -s "$file" ]] || die "the kubeconfig secret decodes to nothing"
grep -q 'clusters' "$file" || die "the decoded kubeconfig secret has no 'clusters' (is it a kubeconfig?)"

gh_env KUBECONFIG "$file"
if command -v kubectl >/dev/null 2>&1; then
  log "kubectl context: $(kubectl config current-context 2>/dev/null || echo "(none set)")"
fi
