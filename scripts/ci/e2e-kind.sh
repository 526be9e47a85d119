#!/usr/bin/env bash
# The end-to-end gate of CI: on the kind cluster `nix run .#deploy-dev` made, put
# ingress-nginx in front (the dev render's entry point is an Ingress of class nginx) and run
# scripts/e2e through it: CRUD and pagination, JSON errors, X-Request-ID, both services'
# metrics, a rolling restart of the user-service under load, a Redis pod deletion, and the
# policy engine and schema validation on what the API server accepted.
#
#   scripts/ci/e2e-kind.sh ARTIFACT_DIR
#
# Run it inside `nix develop` (kubectl, python3 with PyYAML and kubernetes-validate). On
# failure scripts/e2e writes `kubectl describe`, events, every pod's logs and its recording
# into ARTIFACT_DIR, which the workflow uploads.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

artifacts=${1:?usage: $0 ARTIFACT_DIR}
context=${KIND_CONTEXT:-kind-users-platform}
namespace=${E2E_NAMESPACE:-users-platform-dev}
# ingress-nginx's manifest for kind, pinned to a release (its images are pinned by digest in it).
ingress_manifest=${INGRESS_NGINX_MANIFEST:-https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.12.1/deploy/static/provider/kind/deploy.yaml}
local_port=${E2E_LOCAL_PORT:-18081}
require_cmd kubectl python3 curl
mkdir -p "$artifacts"

kc() { kubectl --context "$context" "$@"; }

host=$(kc -n "$namespace" get ingress api-gateway -o jsonpath='{.spec.rules[0].host}') ||
  die "the dev namespace has no Ingress api-gateway: nothing to reach the API through"

log "installing ingress-nginx (kind provider manifest) on the kind node"
# The kind manifest schedules the controller on nodes labelled ingress-ready=true.
kc label node --all ingress-ready=true --overwrite >/dev/null
kc apply -f "$ingress_manifest" >/dev/null
kc -n ingress-nginx rollout status deploy/ingress-nginx-controller --timeout=180s

work=$(tmp_dir)
pf_pid=""
cleanup() {
  if [[ -n $pf_pid ]]; then kill "$pf_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

log "port-forwarding the ingress controller to 127.0.0.1:$local_port"
kc -n ingress-nginx port-forward --address 127.0.0.1 svc/ingress-nginx-controller "$local_port:80" \
  >"$work/port-forward.log" 2>&1 &
pf_pid=$!
base_url="http://127.0.0.1:$local_port"
# The controller answers 404 until it has loaded our Ingress; then /api/users is the gateway's.
for _ in $(seq 1 90); do
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "$base_url/api/users?limit=1" || true)
  [[ $status == 200 ]] && break
  kill -0 "$pf_pid" 2>/dev/null || { cat "$work/port-forward.log" >&2; die "port-forward exited"; }
  sleep 2
done
[[ ${status:-} == 200 ]] || die "the Ingress did not route /api/users to the gateway within 3 min (last status ${status:-none})"

log "scripts/e2e through the Ingress (Host: $host)"
# --local-images: deploy-dev loads the images with `kind load` and applies them by tag, without
# digest (a digest only pins what a registry serves), so image-no-digest does not apply here.
scripts/e2e --context "$context" --namespace "$namespace" --base-url "$base_url" --host "$host" \
  --local-images --artifacts "$artifacts"
