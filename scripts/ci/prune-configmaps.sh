#!/usr/bin/env bash
# Delete the content-named ConfigMaps (label users-platform.dev/content-named=true) of a
# namespace that nothing can use any more.
#
#   scripts/ci/prune-configmaps.sh NAMESPACE
#
# A ConfigMap is kept while a Deployment, StatefulSet, a retained ReplicaSet
# (revisionHistoryLimit) or a ControllerRevision references it, because `kubectl rollout undo`
# to that revision brings the reference back (k8s/lib/platform.nix, content-named ConfigMaps).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns=${1:?usage: $0 NAMESPACE}
require_cmd kubectl jq

work=$(tmp_dir)
trap 'rm -rf "$work"' EXIT
kubectl -n "$ns" get deployments.apps,statefulsets.apps,replicasets.apps,controllerrevisions.apps -o json >"$work/owners.json"
kubectl -n "$ns" get configmaps -l users-platform.dev/content-named=true -o json >"$work/cms.json"

# Every ConfigMap name a pod template (or a ControllerRevision's saved template) mentions.
jq -r '[.items[] | (.spec.template // .data.spec.template // {}) | .spec // {}
        | ((.containers // []) + (.initContainers // []) | .[]
           | ((.envFrom // [])[] | .configMapRef.name // empty),
             ((.env // [])[] | .valueFrom.configMapKeyRef.name // empty)),
          ((.volumes // [])[] | (.configMap.name // empty),
                                ((.projected.sources // [])[] | .configMap.name // empty))]
       | unique | .[]' "$work/owners.json" >"$work/referenced"

pruned=()
while read -r cm; do
  [[ -n "$cm" ]] || continue
  if ! grep -qxF "$cm" "$work/referenced"; then
    kubectl -n "$ns" delete configmap "$cm" --ignore-not-found >/dev/null
    pruned+=("$cm")
  fi
done < <(jq -r '.items[].metadata.name' "$work/cms.json")
log "pruned ConfigMaps in $ns: ${pruned[*]:-none}"
