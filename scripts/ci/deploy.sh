#!/usr/bin/env bash
# Deploy the rendered manifests of one environment, wait for the rollouts, smoke-test, and
# roll back on any failure.
#
#   scripts/ci/deploy.sh ENV MANIFESTS
#
#   ENV        dev | prod (namespace users-platform-<env>, override with NAMESPACE)
#   MANIFESTS  what scripts/ci/render-pinned.sh wrote (a JSON List, images pinned by digest), a
#              YAML file, or a directory of such files (*.json, *.yaml, *.yml, in name order)
#
# Environment:
#   KUBECONFIG         set by scripts/ci/kubeconfig.sh
#   EXPECTED_TAGS      "name:tag ..." as pushed by the images job; every one must appear in the
#                      manifests, so what is deployed is exactly what was scanned and signed.
#                      Every image must carry a digest (name:tag@sha256:...).
#   DEV_REDIS_SECRET   dev only: name of the Redis password Secret created when absent
#                      (default redis-auth; prod's comes from an ExternalSecret)
#   SMOKE_BASE_URL     the public (ingress) URL the smoke test goes through: the path clients
#                      take. Required unless SMOKE_ALLOW_PORT_FORWARD=true (local use only: a
#                      port-forward passes while no client can connect).
#   SMOKE_WRITE        true: the smoke test also creates and deletes a user
#   SMOKE_READY_TIMEOUT seconds the smoke test waits for the first 200 (default 60)
#   ROLLOUT_TIMEOUT    deadline of the (parallel) rollout waits, and again of the rollback's
#                      (default 300s)
#   STEP_TIMEOUT_MINUTES  the workflow step's timeout-minutes; the deploy refuses to start when
#                      its worst case (see budget below) does not fit, so it always finishes (and
#                      rolls back) on its own instead of being killed half-way
#
# Exit status: 0 deployed and healthy; 1 failed (after a rollback when anything was applied).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_name=${1:?usage: $0 dev|prod MANIFESTS}
manifests=${2:?usage: $0 dev|prod MANIFESTS}
case "$env_name" in dev | prod) ;; *) die "unknown environment $env_name (dev|prod)" ;; esac
ns=${NAMESPACE:-users-platform-$env_name}
export ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
here=$(dirname "${BASH_SOURCE[0]}")
require_cmd kubectl curl jq
require_env KUBECONFIG

if [[ -z "${SMOKE_BASE_URL:-}" && "${SMOKE_ALLOW_PORT_FORWARD:-false}" != true ]]; then
  die "SMOKE_BASE_URL (the ingress URL, repository variable DEV_BASE_URL / PROD_BASE_URL) is not set: the smoke test must go the way clients do"
fi

# --- time budget -----------------------------------------------------------------------------
# Worst case: apply + waits for every workload (in parallel, <= ROLLOUT_TIMEOUT) + smoke test,
# then a rollback: undo, replacing stuck StatefulSet pods, waits (<= ROLLOUT_TIMEOUT again).
# FIXED_SECONDS covers the dry run and apply (2 x 60 s request timeout), the smoke test's
# requests (5 x 10 s), diagnostics and the StatefulSet handling (2 x 60 s), with margin; the
# smoke test's readiness wait (SMOKE_READY_TIMEOUT, default 60 s; longer on a first deploy
# while cert-manager issues the certificate) comes on top.
timeout_seconds() {
  local t=$1
  case "$t" in *m) echo $((${t%m} * 60)) ;; *s) echo "${t%s}" ;; *) echo "$t" ;; esac
}
FIXED_SECONDS=360
export SMOKE_READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-60}
rollout_s=$(timeout_seconds "$ROLLOUT_TIMEOUT")
worst=$((2 * rollout_s + FIXED_SECONDS + SMOKE_READY_TIMEOUT))
if [[ -n "${STEP_TIMEOUT_MINUTES:-}" ]]; then
  ((worst <= STEP_TIMEOUT_MINUTES * 60)) ||
    die "worst case ${worst}s (2 x ROLLOUT_TIMEOUT + ${FIXED_SECONDS}s + SMOKE_READY_TIMEOUT) exceeds the step timeout of ${STEP_TIMEOUT_MINUTES} min; raise timeout-minutes in ci.yml"
fi
log "time budget: worst case ${worst}s${STEP_TIMEOUT_MINUTES:+ of ${STEP_TIMEOUT_MINUTES} min}"
kubectl_timeout=(--request-timeout=60s)

# --- resolve the manifest files (a file, or a directory of YAML files) ---------------------
files=()
if [[ -d "$manifests" ]]; then
  shopt -s nullglob
  files=("$manifests"/*.json "$manifests"/*.yaml "$manifests"/*.yml)
  shopt -u nullglob
else
  files=("$manifests")
fi
((${#files[@]} > 0)) || die "no YAML files in $manifests"
for f in "${files[@]}"; do [[ -s "$f" ]] || die "empty or missing manifest $f"; done
apply_args=()
for f in "${files[@]}"; do apply_args+=(-f "$f"); done
log "environment $env_name, namespace $ns, manifests: ${files[*]}"

# --- guard: images pinned by digest only --------------------------------------------------
image_refs_of() {
  local f=$1
  case "$f" in
    *.json) jq -r '.. | objects | select(has("image") and has("name")) | .image' "$f" ;;
    *) sed -nE "s/^[[:space:]-]*image:[[:space:]]*[\"']?([^\"'[:space:]]+).*\$/\1/p" "$f" ;;
  esac
}
mapfile -t image_refs < <(for f in "${files[@]}"; do image_refs_of "$f"; done | sort -u)
((${#image_refs[@]} > 0)) || die "no image references in the manifests"
for ref in "${image_refs[@]}"; do
  [[ "$ref" =~ @sha256:[0-9a-f]{64}$ ]] ||
    die "image not pinned by digest: $ref (render with scripts/ci/render-pinned.sh)"
  log "image $ref"
done
for want in ${EXPECTED_TAGS:-}; do
  name=${want%%:*} tag=${want#*:}
  printf '%s\n' "${image_refs[@]}" | grep -qE "/$name:$tag(@|\$)" ||
    die "the manifests do not reference the pushed image $name:$tag (images: ${image_refs[*]})"
done

# --- record the current revisions (for a precise rollback) --------------------------------
state=$(tmp_dir)/revisions
"$here/rollback.sh" --record "$ns" "$state"

diagnose() {
  log "diagnostics for $ns"
  kubectl -n "$ns" get deployments,statefulsets,pods -o wide >&2 || true
  kubectl -n "$ns" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 >&2 || true
}

fail_and_roll_back() {
  printf '::error::%s\n' "$1" >&2
  diagnose
  log "rolling back"
  "$here/rollback.sh" "$ns" "$state" || printf '::error::the rollback failed too; act now (docs/runbook.md)\n' >&2
  summary "### Deploy to $env_name failed: $1" "" "Rolled back to the revisions recorded before the deploy."
  exit 1
}

# --- namespace first, so Secrets can exist before any pod needs them ----------------------
# (the Namespace object in the manifests then only adds its labels).
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"

# --- dev: the Redis password Secret is generated at deploy time -----------------------------
# Same shape as `nix run .#deploy-dev` creates and prod's ExternalSecret renders: key `password`
# for the services (REDIS_PASSWORD_FILE) and `auth.conf` (`requirepass ...`) for redis-server.
# Created once with a random value and kept; prod never takes this path.
if [[ "$env_name" == dev ]]; then
  secret=${DEV_REDIS_SECRET:-redis-auth}
  if kubectl -n "$ns" get secret "$secret" >/dev/null 2>&1; then
    log "secret $ns/$secret exists; keeping it"
  else
    log "creating secret $ns/$secret with a random password"
    secret_dir=$(tmp_dir)
    (
      umask 077
      password=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
      printf '%s' "$password" >"$secret_dir/password"
      printf 'requirepass %s\n' "$password" >"$secret_dir/auth.conf"
    )
    kubectl -n "$ns" create secret generic "$secret" \
      --from-file=password="$secret_dir/password" --from-file=auth.conf="$secret_dir/auth.conf" >/dev/null
    rm -rf "$secret_dir"
  fi
fi

# --- preflight: server-side dry run (validates against the live API, CRDs, admission) ----
log "server-side dry run"
kubectl "${kubectl_timeout[@]}" apply --server-side --field-manager=users-platform-ci --force-conflicts \
  --dry-run=server "${apply_args[@]}" >/dev/null ||
  die "server-side dry run failed; nothing was changed (missing CRDs? see docs/architecture.md)"

# --- apply ---------------------------------------------------------------------------------
log "applying"
applied=$(tmp_dir)/applied
if ! kubectl "${kubectl_timeout[@]}" apply --server-side --field-manager=users-platform-ci --force-conflicts \
  -o name "${apply_args[@]}" >"$applied"; then
  fail_and_roll_back "kubectl apply failed"
fi
sed 's/^/  /' "$applied" >&2

# --- wait for every workload the manifests contain (in parallel: one deadline for all) -----
mapfile -t workloads < <(grep -E '^(deployment|statefulset)\.apps/' "$applied" || true)
((${#workloads[@]} > 0)) || fail_and_roll_back "the manifests contain no Deployment or StatefulSet"
log "waiting for ${workloads[*]} (timeout $ROLLOUT_TIMEOUT)"
failed=$(wait_rollouts "$ns" "$ROLLOUT_TIMEOUT" "${workloads[@]}") ||
  fail_and_roll_back "$failed did not become ready within $ROLLOUT_TIMEOUT"

# --- smoke test, through the ingress (the way clients come in) -----------------------------
"$here/smoke-test.sh" "$ns" "${SMOKE_BASE_URL:-}" || fail_and_roll_back "smoke test failed"

# --- prune content-named ConfigMaps no retained revision references ------------------------
# (k8s/lib/platform.nix: every config change is a new ConfigMap; `rollout undo` needs the ones
# the retained ReplicaSets / ControllerRevisions name, the rest are garbage.)
"$here/prune-configmaps.sh" "$ns" || warn "pruning old ConfigMaps failed; they are harmless, retry later"

summary "### Deployed to $env_name" "" "Namespace \`$ns\`:" "" "$(printf -- "- \`%s\`\n" "${image_refs[@]}")"
log "deployed to $env_name"
