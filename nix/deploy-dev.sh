#!/usr/bin/env bash
# nix run .#deploy-dev -- deploy the dev environment into a local kind cluster.
#
# Idempotent: run it again after any change. It creates the kind cluster if
# missing, loads the three images (streamed from the Nix store, no registry),
# creates the redis-auth Secret with a random password if absent, applies the
# dev manifests of this commit, waits for the rollouts and smoke-tests the API
# through the gateway.
#
# Provided by the flake (runtimeEnv of the app):
#   UP_IMAGES      lines "<name> <image name> <tag> <stream script>"
#   UP_DEPLOY_DIR  dev manifests split for applying (00-namespaces.json,
#                  10-core.json, 20-extra.json, rollouts, namespace, gateway)
#   UP_MANIFESTS   the same objects as one YAML file (packages.manifests-dev)
# Settings:
#   KIND_CLUSTER_NAME  cluster name (default users-platform)
#   ROLLOUT_TIMEOUT    per-workload wait (default 300s)
#   LOCAL_PORT         local port for the smoke test's port-forward (default 18080)
# Needs a container runtime for kind (docker or podman) on PATH.
set -euo pipefail

cluster=${KIND_CLUSTER_NAME:-users-platform}
context="kind-${cluster}"
timeout=${ROLLOUT_TIMEOUT:-300s}
local_port=${LOCAL_PORT:-18080}
deploy_dir=${UP_DEPLOY_DIR:?UP_DEPLOY_DIR is not set; run this through nix run .#deploy-dev}
images=${UP_IMAGES:?UP_IMAGES is not set; run this through nix run .#deploy-dev}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'deploy-dev: %s\n' "$*" >&2; exit 1; }
kc() { kubectl --context "$context" "$@"; }

workdir=$(mktemp -d)
pf_pid=""
cleanup() {
  if [[ -n $pf_pid ]]; then kill "$pf_pid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

namespace=$(cat "$deploy_dir/namespace")
read -r gateway_service gateway_port <"$deploy_dir/gateway"

# 1. Cluster.
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "kind cluster '$cluster' exists"
else
  log "creating kind cluster '$cluster'"
  kind create cluster --name "$cluster" --wait 120s
fi
kc cluster-info >/dev/null || die "cannot reach the cluster through context $context"

# 2. Images: stream each one to a temporary archive and load it into the nodes.
while read -r name image_name tag stream; do
  [[ -n $name ]] || continue
  log "loading $image_name:$tag"
  "$stream" >"$workdir/$name.tar"
  kind load image-archive "$workdir/$name.tar" --name "$cluster"
  rm -f "$workdir/$name.tar"
done <<<"$images"

# 3. Namespace first, so the Secret can be created before any pod needs it.
kc apply -f "$deploy_dir/00-namespaces.json"

# 4. Redis password: generated once, never stored anywhere but the cluster.
if kc -n "$namespace" get secret redis-auth >/dev/null 2>&1; then
  log "Secret $namespace/redis-auth exists; keeping its password"
else
  log "creating Secret $namespace/redis-auth with a random password"
  (
    umask 077
    password=$(openssl rand -hex 32)
    printf '%s' "$password" >"$workdir/password"
    # masterauth too: a replica authenticates to its primary with the same password.
    printf 'requirepass %s\nmasterauth %s\n' "$password" "$password" >"$workdir/auth.conf"
  )
  kc -n "$namespace" create secret generic redis-auth \
    --from-file=password="$workdir/password" \
    --from-file=auth.conf="$workdir/auth.conf"
  rm -f "$workdir/password" "$workdir/auth.conf"
fi

# 5. Everything else.
kc apply -f "$deploy_dir/10-core.json"
if [[ $(jq '.items | length' "$deploy_dir/20-extra.json") -gt 0 ]]; then
  if kc apply -f "$deploy_dir/20-extra.json"; then
    log "applied operator resources"
  else
    log "skipped operator resources (their CRDs are not installed in this cluster)"
  fi
fi

# 6. Rollouts.
while read -r ns workload; do
  [[ -n $ns ]] || continue
  log "waiting for $ns/$workload"
  if ! kc -n "$ns" rollout status "$workload" --timeout="$timeout"; then
    kc -n "$ns" get pods -o wide >&2 || true
    kc -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
    die "$workload did not become ready within $timeout"
  fi
done <"$deploy_dir/rollouts"

# 7. Smoke test through the gateway.
log "smoke test via port-forward to service/$gateway_service:$gateway_port"
kc -n "$namespace" port-forward "service/$gateway_service" "$local_port:$gateway_port" \
  >"$workdir/port-forward.log" 2>&1 &
pf_pid=$!
base="http://127.0.0.1:$local_port"
ready=""
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "$base/health/ready"; then ready=yes; break; fi
  kill -0 "$pf_pid" 2>/dev/null || { cat "$workdir/port-forward.log" >&2; die "port-forward exited"; }
  sleep 1
done
[[ -n $ready ]] || die "GET /health/ready did not answer 200 within 60 s"

email="smoke-$(openssl rand -hex 6)@example.com"
created=$(curl -fsS -X POST "$base/api/users" \
  -H 'Content-Type: application/json' \
  -d "{\"name\":\"Smoke Test\",\"email\":\"$email\"}") || die "POST /api/users failed"
id=$(jq -er '.id' <<<"$created") || die "POST /api/users returned no id: $created"
fetched=$(curl -fsS "$base/api/users/$id") || die "GET /api/users/$id failed"
[[ $(jq -r '.email' <<<"$fetched") == "$email" ]] || die "GET /api/users/$id returned $fetched"
curl -fsS -o /dev/null -X DELETE "$base/api/users/$id" || log "could not delete the smoke-test user $id"
log "smoke test passed (created, read and deleted user $id)"

kill "$pf_pid" 2>/dev/null || true
pf_pid=""

cat <<EOF

users-platform dev is running in kind cluster '$cluster', namespace '$namespace'.
Reach the API with:
  kubectl --context $context -n $namespace port-forward service/$gateway_service 3000:$gateway_port
  curl http://127.0.0.1:3000/api/users
Manifests applied: ${UP_MANIFESTS:-(see UP_DEPLOY_DIR)}
Delete everything with: kind delete cluster --name $cluster
EOF
