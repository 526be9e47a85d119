#!/usr/bin/env python3
"""Regenerate the object side of the recordings in scripts/e2e-fixtures/ from k8s/rendered/dev.yaml.

    python3 scripts/e2e-fixtures/generate.py        (from anywhere; needs PyYAML)

Run it after a manifest change (scripts/render-manifests), then
`python3 -m pytest -q scripts/e2e_test.py`. It writes, in healthy/ and broken/:

- objects.yaml, namespace.yaml: every rendered object as `kubectl get -o yaml` shows it after
  `nix run .#deploy-dev` applied it to kind: images by their Nix tag without digest (kind load),
  the last-applied annotation, managedFields, uid, resourceVersion, generation,
  creationTimestamp, status, and the API server's defaults (progressDeadlineSeconds,
  spec.replicas of the HPA-scaled Deployments, clusterIP, dnsPolicy, terminationMessagePath,
  volumeMode and the claim status of the volumeClaimTemplates...), plus the two objects
  Kubernetes creates in every namespace (ConfigMap kube-root-ca.crt, ServiceAccount default).
- the pod specs in pods.json and the *-pods-*.json files: containers and volumes from the pod
  template of their workload (ConfigMap names, images), with the pod defaults; the pods' names,
  uids, nodes and statuses (what the other steps judge) are kept, only the images in the
  containerStatuses follow the spec.

broken/ is the same cluster after the edits its README lists: api-gateway set to `:latest`
without resource limits, Redis on an emptyDir instead of its volumeClaimTemplate.

Everything is derived deterministically (uids from uuid5, tags from the rendered digests), so
a run without manifest change rewrites the same bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RENDER = ROOT / "k8s" / "rendered" / "dev.yaml"
APPLIED_AT = "2026-12-03T06:41:12Z"
READY_AT = "2026-12-03T06:41:20Z"
FIRST_RESOURCE_VERSION = 48217
UID_NAMESPACE = uuid.UUID("5f0e6a3c-19f0-4e2b-9d1e-e2e0f1c7a001")
APP_LABEL = "app.kubernetes.io/name"
# The ReplicaSets of the Deployments when the objects were read (the pods in pods.json).
REPLICA_SETS = {"api-gateway": "7d9c6b5f4d", "user-service": "5b7f8d9c6e"}
STS_REVISION = "redis-6b8f9c7d5c"
# kubectl get deploy,sts,svc,cm,sa,networkpolicy,pdb,hpa,ingress,role,rolebinding: this order.
KIND_ORDER = ["Deployment", "StatefulSet", "Service", "ConfigMap", "ServiceAccount", "NetworkPolicy",
              "PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress", "Role", "RoleBinding"]
POD_FILES = ["pods.json", "redis-pods-before.json", "redis-pods-after.json",
             "restart-pods-before.json", "restart-pods-after.json"]
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
IMAGE = re.compile(r"^(?P<name>[^@:]+(?::\d+)?/[^@:]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


class Dumper(yaml.SafeDumper):
    """kubectl's YAML: no anchors/aliases for repeated dicts."""

    def ignore_aliases(self, data):  # noqa: ARG002
        return True


def dump_yaml(data) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=True, default_flow_style=False, width=80)


def nix_hash(seed: str) -> str:
    """A 32-character Nix-store-like hash (base32 alphabet of Nix), derived from seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    number = int.from_bytes(digest, "big")
    return "".join(NIX_BASE32[(number >> (5 * i)) & 31] for i in range(32))


def local_image(ref: str) -> str:
    """`name:tag@sha256:…` of the render -> `name:<nix tag>`, the tag deploy-dev loads into kind
    and applies: no digest, since no registry is involved."""
    m = IMAGE.match(ref)
    if not m:
        raise SystemExit(f"generate: cannot parse image {ref!r}")
    return f"{m['name']}:{nix_hash(m['digest'] or ref)}"


def uid(*parts: str) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, "/".join(parts)))


def cluster_ip(name: str) -> str:
    h = hashlib.sha256(name.encode()).digest()
    return f"10.96.{h[0]}.{h[1] % 254 + 1}"


def containers_of(pod_spec: dict) -> list[dict]:
    return (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or [])


# ---------------------------------------------------------------------------------------------
# What kubectl apply sends, per variant


def applied_objects(variant: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(RENDER.read_text(encoding="utf-8")) if d]
    for doc in docs:
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec")
        for c in containers_of(spec or {}):
            c["image"] = local_image(c["image"])
    if variant == "broken":
        for doc in docs:
            name = doc["metadata"]["name"]
            if doc["kind"] == "Deployment" and name == "api-gateway":
                c = doc["spec"]["template"]["spec"]["containers"][0]
                c["image"] = c["image"].rsplit(":", 1)[0] + ":latest"
                c["resources"].pop("limits", None)
            if doc["kind"] == "StatefulSet" and name == "redis":
                doc["spec"].pop("volumeClaimTemplates", None)
                doc["spec"].pop("persistentVolumeClaimRetentionPolicy", None)
                doc["spec"]["template"]["spec"]["volumes"].append({"emptyDir": {"sizeLimit": "1Gi"}, "name": "data"})
    return docs


# ---------------------------------------------------------------------------------------------
# What the API server makes of it


def fields_v1(value) -> dict:
    """The managedFields tree (FieldsV1) of the fields set in value."""
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out[f"f:{key}"] = fields_v1_entry(key, sub)
        return out
    return {}


def fields_v1_entry(key: str, sub) -> dict:
    if isinstance(sub, dict):
        tree = fields_v1(sub)
        if key in ("labels", "annotations", "matchLabels", "data", "selector") or tree:
            tree = {".": {}, **tree} if key not in ("metadata", "spec", "template") else tree
        return tree
    if isinstance(sub, list) and sub and all(isinstance(i, dict) for i in sub):
        tree: dict = {}
        for item in sub:
            if "name" in item and key != "ports":
                k = json.dumps({"name": item["name"]}, separators=(",", ":"))
            elif key == "ports" and ("containerPort" in item or "port" in item):
                port = "containerPort" if "containerPort" in item else "port"
                k = json.dumps({port: item[port], "protocol": item.get("protocol", "TCP")}, separators=(",", ":"))
            else:
                return {}  # an atomic list
            tree[f"k:{k}"] = {".": {}, **fields_v1(item)}
        return tree
    return {}


def managed_fields(applied: dict, obj: dict) -> list[dict]:
    apply_fields = fields_v1({k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})
    meta = apply_fields.setdefault("f:metadata", {})
    meta.setdefault("f:annotations", {".": {}})["f:kubectl.kubernetes.io/last-applied-configuration"] = {}
    meta.pop("f:name", None)
    meta.pop("f:namespace", None)
    entries = [{"apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1", "fieldsV1": apply_fields,
                "manager": "kubectl-client-side-apply", "operation": "Update", "time": APPLIED_AT}]
    if obj.get("status"):
        manager = {"Deployment": "kube-controller-manager", "StatefulSet": "kube-controller-manager",
                   "HorizontalPodAutoscaler": "kube-controller-manager",
                   "PodDisruptionBudget": "kube-controller-manager",
                   "Ingress": "nginx-ingress-controller"}.get(obj["kind"])
        if manager:
            status = {k: v for k, v in obj["status"].items()}
            entries.append({"apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1",
                            "fieldsV1": {"f:status": fields_v1(status)}, "manager": manager,
                            "operation": "Update", "subresource": "status", "time": READY_AT})
    return entries


def default_probe(probe: dict | None) -> None:
    if probe is not None:
        probe.setdefault("successThreshold", 1)
        if "httpGet" in probe:
            probe["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: dict) -> None:
    for c in containers_of(spec):
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            default_probe(c.get(probe))
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", "IfNotPresent")
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]


def default_template(template: dict) -> None:
    template.setdefault("metadata", {})["creationTimestamp"] = None
    default_pod_spec(template["spec"])


def available_conditions(name: str) -> list[dict]:
    return [
        {"lastTransitionTime": READY_AT, "lastUpdateTime": READY_AT, "message": "Deployment has minimum availability.",
         "reason": "MinimumReplicasAvailable", "status": "True", "type": "Available"},
        {"lastTransitionTime": APPLIED_AT, "lastUpdateTime": READY_AT,
         "message": f'ReplicaSet "{name}-{REPLICA_SETS.get(name, "5d4c3b2a19")}" has successfully progressed.',
         "reason": "NewReplicaSetAvailable", "status": "True", "type": "Progressing"},
    ]


def serverize(applied: dict, rv: int) -> dict:
    obj = copy.deepcopy(applied)
    kind, meta = obj["kind"], obj["metadata"]
    name = meta["name"]
    spec = obj.get("spec")
    generation = None
    if kind == "Deployment":
        generation = 1
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("replicas", 1)  # the server's default, kept while the HPA scales (scripts/e2e drops it)
        spec.setdefault("revisionHistoryLimit", 10)
        default_template(spec["template"])
        obj["status"] = {"availableReplicas": 1, "conditions": available_conditions(name), "observedGeneration": 1,
                         "readyReplicas": 1, "replicas": 1, "updatedReplicas": 1}
        meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
    elif kind == "StatefulSet":
        generation = 1
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"partition": 0})
        default_template(spec["template"])
        for claim in spec.get("volumeClaimTemplates") or []:
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            claim["metadata"]["creationTimestamp"] = None
            claim["spec"].setdefault("volumeMode", "Filesystem")
            claim["status"] = {"phase": "Pending"}
        obj["status"] = {"availableReplicas": 1, "collisionCount": 0, "currentReplicas": 1,
                         "currentRevision": STS_REVISION, "observedGeneration": 1, "readyReplicas": 1,
                         "replicas": 1, "updateRevision": STS_REVISION, "updatedReplicas": 1}
    elif kind == "Service":
        ip = spec.get("clusterIP") or cluster_ip(f"{meta.get('namespace')}/{name}")
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("type", "ClusterIP")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
        obj["status"] = {"loadBalancer": {}}
    elif kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif kind == "Ingress":
        generation = 1
        obj["status"] = {"loadBalancer": {"ingress": [{"hostname": "localhost"}]}}  # kind provider of ingress-nginx
    elif kind == "NetworkPolicy":
        generation = 1
    elif kind == "PodDisruptionBudget":
        generation = 1
        obj["status"] = {
            "conditions": [{"lastTransitionTime": READY_AT, "message": "", "observedGeneration": 1,
                            "reason": "SufficientPods", "status": "True", "type": "DisruptionAllowed"}],
            "currentHealthy": 1, "desiredHealthy": 0, "disruptionsAllowed": 1, "expectedPods": 1,
            "observedGeneration": 1}
    elif kind == "HorizontalPodAutoscaler":
        obj["status"] = {
            "conditions": [
                {"lastTransitionTime": READY_AT, "message": "recommended size matches current size",
                 "reason": "ReadyForNewScale", "status": "True", "type": "AbleToScale"},
                {"lastTransitionTime": "2026-12-03T06:41:57Z",
                 "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
                 "reason": "ValidMetricFound", "status": "True", "type": "ScalingActive"},
                {"lastTransitionTime": "2026-12-03T06:41:57Z",
                 "message": "the desired count is within the acceptable range",
                 "reason": "DesiredWithinRange", "status": "False", "type": "ScalingLimited"},
            ],
            "currentMetrics": [{"resource": {"current": {"averageUtilization": 4, "averageValue": "2m"}, "name": "cpu"},
                                "type": "Resource"}],
            "currentReplicas": 1, "desiredReplicas": 1}
    annotations = meta.setdefault("annotations", {})
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = \
        json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"
    meta["creationTimestamp"] = APPLIED_AT
    if generation is not None:
        meta["generation"] = generation
    meta["resourceVersion"] = str(rv)
    meta["uid"] = uid(kind, meta.get("namespace", ""), name)
    meta["managedFields"] = managed_fields(applied, obj)
    return obj


def automatic_objects(namespace: str, rv: int) -> list[dict]:
    """What Kubernetes creates in every namespace (scripts/e2e ignores them)."""
    ca = "-----BEGIN CERTIFICATE-----\n" + "\n".join(
        nix_hash(f"ca-{i}") * 2 for i in range(8)) + "\n-----END CERTIFICATE-----\n"
    return [
        {"apiVersion": "v1", "data": {"ca.crt": ca}, "kind": "ConfigMap",
         "metadata": {"annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
                      "creationTimestamp": APPLIED_AT,
                      "managedFields": [{"apiVersion": "v1", "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:data": {".": {}, "f:ca.crt": {}},
                                                      "f:metadata": {"f:annotations": {".": {}, "f:kubernetes.io/description": {}}}},
                                         "manager": "kube-controller-manager", "operation": "Update", "time": APPLIED_AT}],
                      "name": "kube-root-ca.crt", "namespace": namespace, "resourceVersion": str(rv),
                      "uid": uid("ConfigMap", namespace, "kube-root-ca.crt")}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"creationTimestamp": APPLIED_AT, "name": "default", "namespace": namespace,
                      "resourceVersion": str(rv + 1), "uid": uid("ServiceAccount", namespace, "default")}},
    ]


def live_objects(variant: str) -> tuple[dict, dict, dict[str, dict]]:
    """(the List of objects.yaml, the Namespace, {app: live workload})."""
    applied = applied_objects(variant)
    offset = 0 if variant == "healthy" else 252  # another cluster, later resourceVersions
    rv = FIRST_RESOURCE_VERSION + offset
    live = []
    namespace_obj = None
    for doc in applied:  # in apply order: the Namespace first
        obj = serverize(doc, rv)
        rv += 7
        if obj["kind"] == "Namespace":
            namespace_obj = obj
        else:
            live.append(obj)
    if namespace_obj is None:
        raise SystemExit("generate: the render has no Namespace")
    live += automatic_objects(namespace_obj["metadata"]["name"], FIRST_RESOURCE_VERSION + offset - 20)
    unknown = {o["kind"] for o in live} - set(KIND_ORDER)
    if unknown:
        print(f"generate: note: {sorted(unknown)} are not among the kinds scripts/e2e reads; left out")
    live = [o for o in live if o["kind"] in KIND_ORDER]
    live.sort(key=lambda o: (KIND_ORDER.index(o["kind"]), o["metadata"]["name"]))
    workloads = {o["metadata"]["labels"].get(APP_LABEL): o for o in live if o["kind"] in ("Deployment", "StatefulSet")}
    listing = {"apiVersion": "v1", "items": live, "kind": "List", "metadata": {"resourceVersion": ""}}
    return listing, namespace_obj, workloads


# ---------------------------------------------------------------------------------------------
# Pods


def refresh_pod(pod: dict, workload: dict) -> None:
    """The pod's spec as its workload's template makes it; identity and status stay."""
    template = workload["spec"]["template"]
    spec = pod["spec"]
    tspec = copy.deepcopy(template["spec"])
    for key in [k for k in spec if k in ("containers", "initContainers", "volumes", "securityContext")]:
        del spec[key]
    volumes = [{"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{pod['metadata']['name']}"}}
               for c in workload["spec"].get("volumeClaimTemplates") or []]
    volumes += tspec.pop("volumes", [])
    spec.update(tspec)
    if volumes:
        spec["volumes"] = volumes
    meta = pod["metadata"]
    annotations = (template.get("metadata") or {}).get("annotations")
    if annotations:
        meta["annotations"] = dict(annotations)
    else:
        meta.pop("annotations", None)
    images = {c["name"]: c["image"] for c in containers_of(spec)}
    status = pod.get("status") or {}
    for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if c["name"] in images:
            c["image"] = images[c["name"]]


def refresh_pods(directory: Path, workloads: dict[str, dict]) -> None:
    for name in POD_FILES:
        path = directory / name
        if not path.is_file():
            continue
        pods = json.loads(path.read_text(encoding="utf-8"))
        for pod in pods.get("items") or []:
            app = ((pod.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
            if app in workloads:
                refresh_pod(pod, workloads[app])
        path.write_text(json.dumps(pods, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    for variant in ("healthy", "broken"):
        directory = HERE / variant
        listing, namespace_obj, workloads = live_objects(variant)
        (directory / "objects.yaml").write_text(dump_yaml(listing), encoding="utf-8")
        (directory / "namespace.yaml").write_text(dump_yaml(namespace_obj), encoding="utf-8")
        refresh_pods(directory, workloads)
        print(f"generate: {directory.relative_to(ROOT)}: {len(listing['items'])} objects + the Namespace, "
              f"pods of {', '.join(sorted(workloads))}")


if __name__ == "__main__":
    main()
