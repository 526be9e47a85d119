#!/usr/bin/env bash
# Roll back the workloads of a namespace to the revisions recorded before a deploy.
#
#   scripts/ci/rollback.sh NAMESPACE STATE_FILE
#
# STATE_FILE (written by `deploy.sh`, or by `rollback.sh --record NAMESPACE STATE_FILE`)
# has one line per Deployment/StatefulSet: "<kind>/<name> <revision>".
# Only workloads whose revision changed since the recording are undone, each to exactly the
# recorded revision (`kubectl rollout undo --to-revision`), so running this after a deploy
# that failed before touching a workload does not roll that workload back one step too far.
# Workloads that did not exist before the deploy are left alone and listed.
#
# Config comes back too: pod templates reference content-named, immutable ConfigMaps
# (k8s/lib/platform.nix), so the undone template names the old ConfigMap, which still exists.
#
# StatefulSets: the controller does not replace a pod of the bad revision that never becomes
# ready (a rolling update waits for it forever; kubernetes#67250). After the undo, every pod of
# the StatefulSet that is not ready and whose controller-revision-hash is not the target
# (.status.updateRevision) is deleted, so it comes back on the restored revision. Ready pods of
# the bad revision are left to the controller's rolling update, one at a time: deleting them
# together would take down the replicated Redis at once (no primary, no Sentinel majority).
#
# The waits run in parallel with one deadline, ROLLOUT_TIMEOUT (default 300s).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd kubectl jq

# revision KIND/NAME: the current revision number of a Deployment or StatefulSet ("" if absent).
revision() {
  local ns=$1 ref=$2 cr
  case "$ref" in
    deployment*/*)
      kubectl -n "$ns" get "$ref" --ignore-not-found \
        -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}'
      ;;
    statefulset*/*)
      cr=$(kubectl -n "$ns" get "$ref" --ignore-not-found -o jsonpath='{.status.updateRevision}')
      [[ -n "$cr" ]] || return 0
      kubectl -n "$ns" get controllerrevision "$cr" --ignore-not-found -o jsonpath='{.revision}'
      ;;
    *) die "unsupported workload $ref" ;;
  esac
}

record() {
  local ns=$1 state=$2 ref
  : >"$state"
  while read -r ref; do
    [[ -n "$ref" ]] || continue
    printf '%s %s\n' "$ref" "$(revision "$ns" "$ref")" >>"$state"
  done < <(kubectl -n "$ns" get deployments.apps,statefulsets.apps -o name 2>/dev/null || true)
  log "recorded revisions in $ns:"
  cat "$state" >&2
}

if [[ "${1:-}" == --record ]]; then
  record "${2:?usage: $0 --record NAMESPACE STATE_FILE}" "${3:?usage: $0 --record NAMESPACE STATE_FILE}"
  exit 0
fi

ns=${1:?usage: $0 NAMESPACE STATE_FILE}
state=${2:?usage: $0 NAMESPACE STATE_FILE}
timeout=${ROLLOUT_TIMEOUT:-300s}
[[ -f "$state" ]] || die "no state file $state"

# replace_stuck_pods NS statefulset/NAME: delete the pods neither ready nor on the target revision.
replace_stuck_pods() {
  local ns=$1 ref=$2 name=${2#*/} target="" generation observed pods
  for _ in $(seq 1 30); do
    read -r generation observed target < <(kubectl -n "$ns" get "$ref" \
      -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.updateRevision}{"\n"}') || true
    [[ "$generation" == "$observed" && -n "$target" ]] && break
    sleep 2
  done
  [[ -n "$target" ]] || { warn "$ref has no updateRevision; not replacing pods"; return 0; }
  pods=$(kubectl -n "$ns" get pods -o json | jq -r --arg sts "$name" --arg rev "$target" '
    .items[]
    | select(any(.metadata.ownerReferences[]?; .kind == "StatefulSet" and .name == $sts))
    | select(.metadata.labels["controller-revision-hash"] != $rev)
    | select((.status.conditions // []) | any(.type == "Ready" and .status == "True") | not)
    | .metadata.name')
  if [[ -n "$pods" ]]; then
    log "$ref: deleting pods not ready and not on revision $target: $(echo "$pods" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one pod name per word
    kubectl -n "$ns" delete pod $pods --wait=false
  fi
}

undone=()
while read -r ref before; do
  [[ -n "$ref" ]] || continue
  now=$(revision "$ns" "$ref")
  if [[ -z "$before" ]]; then
    warn "$ref had no revision before the deploy; nothing to roll back to"
  elif [[ "$now" == "$before" ]]; then
    log "$ref unchanged (revision $before)"
  else
    log "rolling back $ref from revision ${now:-?} to $before"
    kubectl -n "$ns" rollout undo "$ref" --to-revision="$before"
    undone+=("$ref")
    case "$ref" in statefulset*/*) replace_stuck_pods "$ns" "$ref" ;; esac
  fi
done <"$state"

# Workloads created by the failed deploy (not in the state file) cannot be undone.
while read -r ref; do
  grep -q "^$ref " "$state" || warn "$ref was created by this deploy and has no previous revision"
done < <(kubectl -n "$ns" get deployments.apps,statefulsets.apps -o name 2>/dev/null || true)

status=0 failed=""
if ((${#undone[@]} > 0)); then
  failed=$(wait_rollouts "$ns" "$timeout" "${undone[@]}") || status=1
fi
summary "### Rollback in $ns" "" "Rolled back: ${undone[*]:-nothing changed}"
((status == 0)) || die "rollback did not converge within $timeout: $failed"
log "rollback finished: ${undone[*]:-nothing to undo}"
