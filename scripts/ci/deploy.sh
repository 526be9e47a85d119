#!/usr/bin/env bash
# Deploy the rendered manifests of one environment, wait for the rollouts, smoke-test, and
# roll back on any failure.
#
#   scripts/ci/deploy.sh ENV MANIFESTS
#
#   ENV        dev | prod (namespace users-platform-<env>, override with NAMESPACE)
#   MANIFESTS  the output of `nix build .#manifests-<env>`: a YAML file, or a directory
#              holding YAML files (all *.yaml / *.yml in it are applied, in name order)
#
# Environment:
#   KUBECONFIG         set by scripts/ci/kubeconfig.sh
#   EXPECTED_TAGS      "name:tag ..." as pushed by the images job; every one must appear in the
#                      manifests, so what is deployed is exactly what was scanned and signed
#   DEV_REDIS_SECRET   dev only: name of the Redis password Secret created when absent
#                      (default redis-auth; prod's comes from an ExternalSecret)
#   SMOKE_BASE_URL     ingress URL for the smoke test (default: kubectl port-forward)
#   SMOKE_WRITE        true: the smoke test also creates and deletes a user
#   ROLLOUT_TIMEOUT    deadline for each `kubectl rollout status` (default 300s)
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

# --- resolve the manifest files (a file, or a directory of YAML files) ---------------------
files=()
if [[ -d "$manifests" ]]; then
  shopt -s nullglob
  files=("$manifests"/*.yaml "$manifests"/*.yml)
  shopt -u nullglob
else
  files=("$manifests")
fi
((${#files[@]} > 0)) || die "no YAML files in $manifests"
for f in "${files[@]}"; do [[ -s "$f" ]] || die "empty or missing manifest $f"; done
apply_args=()
for f in "${files[@]}"; do apply_args+=(-f "$f"); done
log "environment $env_name, namespace $ns, manifests: ${files[*]}"

# --- guard: immutable image references only ---------------------------------------------
mapfile -t image_refs < <(sed -nE "s/^[[:space:]-]*image:[[:space:]]*[\"']?([^\"'[:space:]]+).*\$/\1/p" "${files[@]}" | sort -u)
((${#image_refs[@]} > 0)) || die "no image references in the manifests"
for ref in "${image_refs[@]}"; do
  if [[ "$ref" != *@sha256:* ]]; then
    tag=${ref##*/}
    [[ "$tag" == *:* ]] || die "image without a tag: $ref"
    [[ "${tag##*:}" != latest ]] || die "refusing to deploy a 'latest' image: $ref"
  fi
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
kubectl apply --server-side --field-manager=users-platform-ci --force-conflicts \
  --dry-run=server "${apply_args[@]}" >/dev/null ||
  die "server-side dry run failed; nothing was changed (missing CRDs? see docs/architecture.md)"

# --- apply ---------------------------------------------------------------------------------
log "applying"
applied=$(tmp_dir)/applied
if ! kubectl apply --server-side --field-manager=users-platform-ci --force-conflicts \
  -o name "${apply_args[@]}" >"$applied"; then
  fail_and_roll_back "kubectl apply failed"
fi
sed 's/^/  /' "$applied" >&2

# --- wait for every workload the manifests contain ----------------------------------------
mapfile -t workloads < <(grep -E '^(deployment|statefulset)\.apps/' "$applied" || true)
((${#workloads[@]} > 0)) || fail_and_roll_back "the manifests contain no Deployment or StatefulSet"
for w in "${workloads[@]}"; do
  log "waiting for $w (timeout $ROLLOUT_TIMEOUT)"
  kubectl -n "$ns" rollout status "$w" --timeout="$ROLLOUT_TIMEOUT" ||
    fail_and_roll_back "$w did not become ready within $ROLLOUT_TIMEOUT"
done

# --- smoke test ----------------------------------------------------------------------------
"$here/smoke-test.sh" "$ns" "${SMOKE_BASE_URL:-}" || fail_and_roll_back "smoke test failed"

summary "### Deployed to $env_name" "" "Namespace \`$ns\`:" "" "$(printf -- "- \`%s\`\n" "${image_refs[@]}")"
log "deployed to $env_name"
