"""The deployer RBAC documented in the README works with server-side apply for every kind the
renders contain, and covers what scripts/ci/*.sh do.

Server-side apply is a PATCH (`patch`); a PATCH that creates the object is also authorised as
`create`; kubectl reads objects back (`get`). A new kind in k8s/rendered/ without a matching
rule here and in the README fails this test, so the documented RBAC cannot fall behind.
"""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
RENDERED = REPO / "k8s" / "rendered"

# kind -> (API group, resource), for every kind the renders may contain.
RESOURCES = {
    "Namespace": ("", "namespaces"),
    "ServiceAccount": ("", "serviceaccounts"),
    "ConfigMap": ("", "configmaps"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Service": ("", "services"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "CronJob": ("batch", "cronjobs"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "ServiceMonitor": ("monitoring.coreos.com", "servicemonitors"),
    "PrometheusRule": ("monitoring.coreos.com", "prometheusrules"),
    "ExternalSecret": ("external-secrets.io", "externalsecrets"),
}
CLUSTER_SCOPED = {"Namespace"}
APPLY_VERBS = {"get", "create", "patch"}

# What scripts/ci/{deploy,rollback,prune-configmaps}.sh do beyond applying.
SCRIPT_VERBS = {
    ("apps", "deployments"): {"list", "watch", "patch"},     # rollout status, rollout undo, --record
    ("apps", "statefulsets"): {"list", "watch", "patch"},
    ("apps", "replicasets"): {"list", "watch"},              # rollout status/undo, pruning
    ("apps", "controllerrevisions"): {"get", "list"},        # StatefulSet revisions, pruning
    ("", "pods"): {"list", "delete"},                        # stuck StatefulSet pods, diagnostics
    ("", "configmaps"): {"list", "delete"},                  # pruning
    ("", "events"): {"list"},                                # diagnostics
    ("", "secrets"): {"get", "create"},                      # dev's redis-auth
}


def documented_rbac():
    text = README.read_text()
    m = re.search(r"<!-- deployer-rbac:begin -->\s*```yaml\n(.*?)```\s*<!-- deployer-rbac:end -->", text, re.S)
    assert m, "README.md lacks the deployer-rbac block"
    docs = [d for d in yaml.safe_load_all(m.group(1)) if d]
    return {d["kind"]: d for d in docs}


def verbs(role, group, resource, name=None):
    out = set()
    for r in role["rules"]:
        if group in r.get("apiGroups", []) and resource in r.get("resources", []):
            names = r.get("resourceNames")
            if names and name not in names:
                continue
            out |= set(r["verbs"])
    return out


def rendered_objects():
    files = sorted(RENDERED.glob("*.yaml"))
    if not files:
        pytest.skip("no renders in k8s/rendered/")
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


def test_every_rendered_kind_can_be_server_side_applied():
    rbac = documented_rbac()
    role, cluster_role = rbac["Role"], rbac["ClusterRole"]
    problems = []
    for obj in rendered_objects():
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind not in RESOURCES:
            problems.append(f"{kind}: unknown kind; add it to RESOURCES here and to the README's RBAC")
            continue
        group, resource = RESOURCES[kind]
        if kind in CLUSTER_SCOPED:
            # The README shows prod's; dev's binding names users-platform-dev instead.
            have = verbs(cluster_role, group, resource, re.sub(r"^users-platform-dev$", "users-platform-prod", name))
        else:
            have = verbs(role, group, resource)
        missing = APPLY_VERBS - have
        if missing:
            problems.append(f"{kind}/{name}: server-side apply needs {sorted(missing)} on {group or 'core'}/{resource}")
    assert not problems, "\n".join(problems)


def test_the_scripts_verbs_are_granted():
    role = documented_rbac()["Role"]
    missing = {f"{g or 'core'}/{r}": sorted(v - verbs(role, g, r)) for (g, r), v in SCRIPT_VERBS.items() if v - verbs(role, g, r)}
    assert not missing, missing


def test_role_is_namespaced_to_the_prod_namespace():
    rbac = documented_rbac()
    assert rbac["Role"]["metadata"]["namespace"] == "users-platform-prod"
    names = [r.get("resourceNames") for r in rbac["ClusterRole"]["rules"] if "patch" in r["verbs"]]
    assert names == [["users-platform-prod"]], "the Namespace patch must be limited to the platform's namespace"
