#!/usr/bin/env bash
# Log in to a container registry with skopeo, writing the credentials to a private file
# under RUNNER_TEMP that both skopeo (REGISTRY_AUTH_FILE) and cosign (DOCKER_CONFIG) read.
#
#   REGISTRY_USER=... REGISTRY_PASSWORD=... scripts/ci/registry-login.sh ghcr.io
#
# The password is read from the environment and passed on stdin only; it is never echoed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

registry=${1:?usage: $0 REGISTRY_HOST}
require_env REGISTRY_USER REGISTRY_PASSWORD
require_cmd skopeo

auth_dir=$(tmp_dir)
chmod 700 "$auth_dir"
auth_file="$auth_dir/config.json"
printf '{"auths":{}}\n' >"$auth_file"
chmod 600 "$auth_file"

log "logging in to $registry as $REGISTRY_USER"
printf '%s' "$REGISTRY_PASSWORD" |
  skopeo login --authfile "$auth_file" --username "$REGISTRY_USER" --password-stdin "$registry"

# The file is in the docker config.json format, so one login serves skopeo, cosign and trivy.
gh_env REGISTRY_AUTH_FILE "$auth_file"
gh_env DOCKER_CONFIG "$auth_dir"
