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
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd kubectl

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
  fi
done <"$state"

# Workloads created by the failed deploy (not in the state file) cannot be undone.
while read -r ref; do
  grep -q "^$ref " "$state" || warn "$ref was created by this deploy and has no previous revision"
done < <(kubectl -n "$ns" get deployments.apps,statefulsets.apps -o name 2>/dev/null || true)

status=0
for ref in "${undone[@]}"; do
  kubectl -n "$ns" rollout status "$ref" --timeout="$timeout" || status=1
done
summary "### Rollback in $ns" "" "Rolled back: ${undone[*]:-nothing changed}"
((status == 0)) || die "rollback did not converge within $timeout"
log "rollback finished: ${undone[*]:-nothing to undo}"
