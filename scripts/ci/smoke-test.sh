#!/usr/bin/env bash
# Smoke-test a deployed environment the way clients reach it.
#
#   scripts/ci/smoke-test.sh NAMESPACE [BASE_URL]
#
# With BASE_URL (the public ingress URL; the deploy jobs require it) requests go through the
# ingress controller, DNS and TLS, exactly the path clients take; the Ingress routes only /api,
# so the readiness wait polls GET /api/users?limit=1 until it answers 200. Without BASE_URL
# (local use only) `kubectl port-forward svc/api-gateway` opens a tunnel on 127.0.0.1 and the
# wait polls /health/ready first: that proves the pods work, not that anyone can reach them.
# Checks: the wait (retried while the new pods settle), then GET /api/users?limit=1 is 200 with
# a JSON `data` array. With SMOKE_WRITE=true (dev only) it also creates, reads and deletes a
# throw-away user.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns=${1:?usage: $0 NAMESPACE [BASE_URL]}
base_url=${2:-}
service=${SMOKE_SERVICE:-api-gateway}
service_port=${SMOKE_SERVICE_PORT:-3000}
local_port=${SMOKE_LOCAL_PORT:-18080}
ready_timeout=${SMOKE_READY_TIMEOUT:-60}
require_cmd curl jq

work=$(tmp_dir)
pf_pid=""
cleanup() {
  if [[ -n "$pf_pid" ]]; then kill "$pf_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ready_path='/api/users?limit=1'
if [[ -z "$base_url" ]]; then
  ready_path=/health/ready
  require_cmd kubectl
  log "port-forwarding svc/$service:$service_port in $ns to 127.0.0.1:$local_port"
  kubectl -n "$ns" port-forward --address 127.0.0.1 "svc/$service" "$local_port:$service_port" \
    >"$work/port-forward.log" 2>&1 &
  pf_pid=$!
  base_url="http://127.0.0.1:$local_port"
  for _ in $(seq 1 30); do
    grep -q 'Forwarding from' "$work/port-forward.log" && break
    kill -0 "$pf_pid" 2>/dev/null || { cat "$work/port-forward.log" >&2; die "port-forward exited"; }
    sleep 1
  done
fi
base_url=${base_url%/}

# request METHOD PATH [BODY]: prints the HTTP status; the body goes to $work/body.
request() {
  local method=$1 path=$2 body=${3:-}
  local args=(--silent --show-error --max-time 10 --output "$work/body" --write-out '%{http_code}'
    -X "$method" -H 'Accept: application/json' -H "X-Request-ID: ci-smoke-${GITHUB_RUN_ID:-local}")
  if [[ -n "$body" ]]; then args+=(-H 'Content-Type: application/json' --data "$body"); fi
  local code
  code=$(curl "${args[@]}" "$base_url$path" 2>>"$work/curl.log") || code=000
  printf '%s' "$code"
}

expect() {
  local what=$1 want=$2 got=$3
  if [[ "$got" != "$want" ]]; then
    printf 'response body: %s\n' "$(head -c 2000 "$work/body" 2>/dev/null)" >&2
    if [[ -s "$work/curl.log" ]]; then tail -n 5 "$work/curl.log" >&2; fi
    die "smoke test failed: $what returned $got, expected $want"
  fi
  log "ok: $what -> $got"
}

log "waiting up to ${ready_timeout}s for $base_url$ready_path"
deadline=$((SECONDS + ready_timeout))
while :; do
  status=$(request GET "$ready_path")
  [[ "$status" != 200 ]] || break
  ((SECONDS < deadline)) || expect "GET $ready_path" 200 "$status"
  sleep 2
done
log "ok: GET $ready_path -> 200"

status=$(request GET '/api/users?limit=1')
expect "GET /api/users?limit=1" 200 "$status"
jq -e '.data | type == "array"' "$work/body" >/dev/null ||
  die "smoke test failed: GET /api/users did not return a JSON data array"

if [[ "${SMOKE_WRITE:-false}" == true ]]; then
  email="ci-smoke-${GITHUB_RUN_ID:-local}-$RANDOM@example.com"
  payload=$(jq -cn --arg email "$email" '{name: "CI smoke test", email: $email}')
  status=$(request POST /api/users "$payload")
  expect "POST /api/users" 201 "$status"
  id=$(jq -er '.id' "$work/body") || die "smoke test failed: POST /api/users returned no id"
  expect "GET /api/users/$id" 200 "$(request GET "/api/users/$id")"
  expect "DELETE /api/users/$id" 204 "$(request DELETE "/api/users/$id")"
  expect "GET /api/users/$id after delete" 404 "$(request GET "/api/users/$id")"
fi

summary "Smoke test passed against \`$ns\` (${SMOKE_WRITE:-false} write checks)."
log "smoke test passed"
