#!/usr/bin/env python3
"""users-platform manifest policy engine.

Checks what kube-score, kube-linter and Polaris would catch and checkov does not, across the
whole set of objects (cross-object rules need the full set).

Usage:
    python3 k8s/policy/policy.py [--json] FILE_OR_DIR...

Directories contribute every *.yaml / *.yml inside (non-recursive). Output: one finding a line,
    <rule-id> <file> <Kind>/<namespace>/<name>: <message>
(<namespace> is "-" for cluster-scoped objects), or with --json one JSON object a line with keys
rule, file, object, message. Exit status: 1 if any finding, 0 if none, 2 on usage/parse errors.

A rule is skipped for one object with the annotation
    users-platform.dev/policy-skip.<rule-id>: "<reason>"
on that object's metadata; the reason is mandatory. Skips are reported as notes on stderr.
Only Python 3.11 and PyYAML are needed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit

import yaml

SKIP_PREFIX = "users-platform.dev/policy-skip."

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
SELECTOR_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CustomResourceDefinition", "PriorityClass", "IngressClass", "ClusterSecretStore", "ClusterIssuer",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService", "RuntimeClass",
}

CREDENTIAL_NAME = re.compile(r"password|passwd|secret|token|apikey|api_key|credential", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
REQUIREPASS_LINE = re.compile(r"^\s*requirepass\s+\S", re.MULTILINE)
INCLUDE_LINE = re.compile(r"^\s*include\s+(\S+)", re.MULTILINE)
URL_VALUE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
SLEEP_CMD = re.compile(r"(?:^|[\s;&|])sleep\s+(\d+)")
HOST_ENV_SUFFIXES = ("_HOST", "_URL", "_ADDR")
# Variables holding a comma-separated list of host:port (REDIS_SENTINELS).
HOST_LIST_SUFFIXES = ("_SENTINELS",)
LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
PSS_LABEL = "pod-security.kubernetes.io/enforce"

RULES: dict[str, str] = {
    "selector-mismatch": "workload selector.matchLabels must be a subset of the pod template labels",
    "service-no-endpoints": "a Service selector must match some pod template",
    "service-targetport": "a Service targetPort must be a container port (number or name) of the selected pods",
    "probe-port": "probes must target a declared container port",
    "liveness-failure-threshold": "liveness failureThreshold >= 3; liveness and readiness probes present",
    "liveness-depends-on-deps": "liveness must not share the readiness check or check readiness",
    "env-host-unknown": "hosts named in env vars must be Services in the set (or loopback)",
    "redis-password-unwired": "clients of a password-protected Redis must get the password from a Secret",
    "memory-limit-missing": "containers need limits.memory, requests.memory and requests.cpu",
    "hpa-target-missing": "an HPA must target an existing Deployment/StatefulSet",
    "hpa-cpu-without-request": "CPU-based HPAs need requests.cpu on the target's containers",
    "hpa-fixed-replicas": "a workload owned by an HPA must not set spec.replicas",
    "pdb-blocks-drain": "a PodDisruptionBudget must allow at least one eviction",
    "prestop-exceeds-grace": "preStop sleep must be shorter than terminationGracePeriodSeconds",
    "pod-no-networkpolicy": "every pod must be selected by NetworkPolicies for ingress and egress",
    "dns-egress-missing": "egress-restricted pods must be allowed UDP+TCP 53 to kube-dns",
    "netpol-service-port": "NetworkPolicy ports are pod ports, not differing Service ports",
    "netpol-or-selector": "namespaceSelector-only and podSelector-only peers side by side are OR-ed",
    "configmap-credentials": "ConfigMaps must not hold credentials",
    "env-literal-secret": "credential env vars must come from a Secret, not a literal value",
    "image-mutable-tag": "images need a fixed tag (not missing, not latest)",
    "run-as-root": "containers must run hardened (non-root, read-only root fs, no escalation, drop ALL)",
    "container-port-mismatch": "the configured listen port must equal the declared http containerPort",
    "namespace-pod-security": "namespaces must enforce Pod Security restricted",
    "entry-point-missing": "a namespace serving pods needs an entry point (Ingress, Gateway API route or LoadBalancer Service) whose backend exists",
    "monitoring-unselected": "ServiceMonitors/PodMonitors/PrometheusRules need the Prometheus selection labels and must not select every namespace",
    "rule-selector-unscoped": "every selector of a PrometheusRule expression needs a namespace matcher",
    "configmap-mutable": "ConfigMaps a workload references must be immutable (content-named), so rollout undo restores them",
    "image-no-digest": "deployable images must be pinned by digest (name:tag@sha256:...)",
    "replicated-unprotected": "a StatefulSet of several replicas needs a PodDisruptionBudget and pod anti-affinity across nodes",
}

# Labels a Prometheus resource selects ServiceMonitors/PodMonitors/Probes/PrometheusRules by.
# kube-prometheus-stack's default is `release: <helm release>`; --selection-label overrides.
SELECTION_LABELS: tuple[str, ...] = ("release",)
MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "Probe", "PrometheusRule")
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute")
# Labels that scope a PromQL selector to one namespace (ingress-nginx's series carry the
# Ingress' namespace as exported_namespace when the controller's own `namespace` wins).
SCOPE_LABELS = ("namespace", "exported_namespace")


# --------------------------------------------------------------------------------------------
# Model


@dataclass
class Obj:
    """One Kubernetes object and where it came from."""

    doc: dict
    file: str
    index: int

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def meta(self) -> dict:
        return self.doc.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def namespace(self) -> str:
        if self.kind in CLUSTER_SCOPED:
            return "-"
        return str(self.meta.get("namespace") or "default")

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def spec(self) -> dict:
        return self.doc.get("spec") or {}

    def skip_reason(self, rule: str) -> str | None:
        annotations = self.meta.get("annotations") or {}
        key = SKIP_PREFIX + rule
        if key not in annotations:
            return None
        return str(annotations.get(key) or "")


@dataclass(frozen=True)
class Finding:
    rule: str
    obj: Obj
    message: str

    def sort_key(self) -> tuple:
        return (self.obj.file, self.obj.index, self.rule, self.message)


class Index:
    """The whole set of objects, with lookups the cross-object rules need."""

    def __init__(self, objects: list[Obj]):
        self.objects = objects
        self.by_kind: dict[str, list[Obj]] = {}
        for obj in objects:
            self.by_kind.setdefault(obj.kind, []).append(obj)

    def kind(self, *kinds: str) -> list[Obj]:
        out: list[Obj] = []
        for k in kinds:
            out.extend(self.by_kind.get(k, []))
        return out

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        for obj in self.by_kind.get(kind, []):
            if obj.namespace == namespace and obj.name == name:
                return obj
        return None

    def workloads(self) -> list[Obj]:
        return [o for o in self.kind(*WORKLOAD_KINDS) if pod_spec(o) is not None]

    def services(self, namespace: str) -> list[Obj]:
        return [s for s in self.kind("Service") if s.namespace == namespace]

    def pods_selected(self, namespace: str, selector: dict) -> list[Obj]:
        """Workloads in `namespace` whose pod template labels match the label map `selector`."""
        return [w for w in self.workloads() if w.namespace == namespace and labels_match(selector, pod_labels(w))]


# --------------------------------------------------------------------------------------------
# Helpers


def pod_template(obj: Obj) -> dict | None:
    if obj.kind == "Pod":
        return {"metadata": obj.meta, "spec": obj.spec}
    if obj.kind == "CronJob":
        return ((obj.spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if obj.kind in WORKLOAD_KINDS:
        return obj.spec.get("template")
    return None


def pod_spec(obj: Obj) -> dict | None:
    template = pod_template(obj)
    if not isinstance(template, dict):
        return None
    spec = template.get("spec")
    return spec if isinstance(spec, dict) else None


def pod_labels(obj: Obj) -> dict:
    template = pod_template(obj) or {}
    return (template.get("metadata") or {}).get("labels") or {}


def containers(obj: Obj, init: bool = True) -> list[dict]:
    spec = pod_spec(obj) or {}
    out = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if init:
        out += [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    return out


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def label_selector_matches(selector: dict | None, labels: dict) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); {} / None matches everything."""
    selector = selector or {}
    if not labels_match(selector.get("matchLabels") or {}, labels):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def container_ports(container: dict) -> list[dict]:
    return [p for p in container.get("ports") or [] if isinstance(p, dict)]


def port_declared(container: dict, port: Any) -> bool:
    for p in container_ports(container):
        if isinstance(port, str) and not port.isdigit():
            if p.get("name") == port:
                return True
        elif str(p.get("containerPort")) == str(port):
            return True
    return False


def resolve_container_port(workloads: Iterable[Obj], target: Any) -> set[int]:
    """Numeric container ports a (named or numeric) target port resolves to."""
    out: set[int] = set()
    for w in workloads:
        for c in containers(w, init=False):
            for p in container_ports(c):
                if isinstance(target, str) and not target.isdigit():
                    if p.get("name") == target and isinstance(p.get("containerPort"), int):
                        out.add(p["containerPort"])
                elif str(p.get("containerPort")) == str(target):
                    out.add(int(target))
    return out


def resolved_env(index: Index, obj: Obj, container: dict) -> list[tuple[str, str | None, dict | None]]:
    """(name, value, env entry) for every env var, envFrom ConfigMaps resolved from the set.

    The entry is the literal `env` item (None for values from envFrom); value is None when it
    cannot be known (Secret refs, field refs, ConfigMaps missing from the set).
    """
    out: list[tuple[str, str | None, dict | None]] = []
    for src in container.get("envFrom") or []:
        ref = (src or {}).get("configMapRef")
        if not ref:
            continue
        cm = index.find("ConfigMap", obj.namespace, str(ref.get("name", "")))
        if cm is None:
            continue
        prefix = src.get("prefix") or ""
        for key, value in sorted((cm.doc.get("data") or {}).items()):
            out.append((prefix + str(key), None if value is None else str(value), None))
    for item in container.get("env") or []:
        if not isinstance(item, dict) or "name" not in item:
            continue
        name = str(item["name"])
        if "value" in item:
            out.append((name, None if item["value"] is None else str(item["value"]), item))
            continue
        ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
        value = None
        if ref:
            cm = index.find("ConfigMap", obj.namespace, str(ref.get("name", "")))
            if cm is not None:
                raw = (cm.doc.get("data") or {}).get(ref.get("key"))
                value = None if raw is None else str(raw)
        out.append((name, value, item))
    return out


def env_host(name: str, value: str | None) -> str | None:
    """The host an env var names, if it is a host-like variable; None otherwise."""
    if not value:
        return None
    value = value.strip()
    if URL_VALUE.match(value):
        try:
            host = urlsplit(value).hostname
        except ValueError:
            return None
        return host or None
    if name.endswith(("_HOST", "_ADDR")):
        if value.startswith("["):
            return value[1:].split("]", 1)[0]
        if value.count(":") == 1:
            return value.split(":", 1)[0]
        return value
    return None


def env_hosts(name: str, value: str | None) -> list[str]:
    """Every host an env var names: one for host-like variables and URLs, each entry of a
    host:port list (REDIS_SENTINELS), none otherwise."""
    if name.endswith(HOST_LIST_SUFFIXES):
        hosts = (env_host(name[: -len("_SENTINELS")] + "_ADDR", entry) for entry in (value or "").split(","))
        return [h for h in hosts if h]
    if not (name.endswith(HOST_ENV_SUFFIXES) or (value and URL_VALUE.match(value.strip()))):
        return []
    host = env_host(name, value)
    return [host] if host else []


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_services(index: Index, namespace: str, host: str) -> list[Obj] | None:
    """Services a DNS name resolves to; [] when unknown; None when it is loopback."""
    host = host.lower().rstrip(".")
    if host in LOOPBACK:
        return None
    parts = host.split(".")
    candidates: list[tuple[str, str]] = []
    if len(parts) == 1:
        candidates.append((parts[0], namespace))
    if len(parts) == 2:
        candidates.append((parts[0], parts[1]))
        candidates.append((parts[1], namespace))  # <pod>.<headless svc>
    if len(parts) == 3 and parts[2] == "svc":
        candidates.append((parts[0], parts[1]))
    if len(parts) == 5 and parts[2:] == ["svc", "cluster", "local"]:
        candidates.append((parts[0], parts[1]))
    if len(parts) == 4 and parts[3] == "svc":
        candidates.append((parts[1], parts[2]))  # <pod>.<svc>.<ns>.svc
    if len(parts) == 6 and parts[3:] == ["svc", "cluster", "local"]:
        candidates.append((parts[1], parts[2]))
    found = []
    for svc, ns in candidates:
        s = index.find("Service", ns, svc)
        if s is not None:
            found.append(s)
    return found


def is_redis_container(container: dict) -> bool:
    image = str(container.get("image", "")).lower()
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return container.get("name") == "redis" or base.startswith("redis")


def volume_mount_targets(obj: Obj, container: dict) -> list[tuple[str, dict]]:
    """(mountPath, volume) for every mount of the container."""
    volumes = {v.get("name"): v for v in (pod_spec(obj) or {}).get("volumes") or [] if isinstance(v, dict)}
    out = []
    for m in container.get("volumeMounts") or []:
        if isinstance(m, dict) and m.get("name") in volumes:
            out.append((str(m.get("mountPath", "")), volumes[m["name"]]))
    return out


def volume_has_secret(volume: dict) -> bool:
    if volume.get("secret"):
        return True
    projected = volume.get("projected") or {}
    return any((s or {}).get("secret") for s in projected.get("sources") or [])


def under(path: str, directory: str) -> bool:
    directory = directory.rstrip("/")
    return bool(directory) and (path == directory or path.startswith(directory + "/"))


def redis_requires_password(index: Index, obj: Obj, container: dict) -> str | None:
    """Why this redis container requires a password, or None."""
    words = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if any("requirepass" in w for w in words):
        return "its command line sets requirepass"
    for name, _value, _item in resolved_env(index, obj, container):
        if name.startswith("REDIS_PASSWORD") or (name == "REDIS_ARGS" and "requirepass" in (_value or "")):
            return f"it gets {name}"
    mounts = volume_mount_targets(obj, container)
    secret_dirs = [path for path, vol in mounts if volume_has_secret(vol)]
    for _path, vol in mounts:
        cm_name = (vol.get("configMap") or {}).get("name")
        cm = index.find("ConfigMap", obj.namespace, str(cm_name)) if cm_name else None
        if cm is None:
            continue
        for value in (cm.doc.get("data") or {}).values():
            text = str(value)
            if REQUIREPASS_LINE.search(text):
                return f"ConfigMap {cm.name} sets requirepass"
            for include in INCLUDE_LINE.findall(text):
                if any(under(include, d) for d in secret_dirs):
                    return f"its config includes {include} from a mounted Secret"
    return None


def port_matches(rule_port: dict, number: int, protocol: str, names: Iterable[str] = ()) -> bool:
    if (rule_port.get("protocol") or "TCP") != protocol:
        return False
    port = rule_port.get("port")
    if port is None:
        return True
    if isinstance(port, str) and not port.isdigit():
        return port in names
    end = rule_port.get("endPort")
    if end is not None:
        return int(port) <= number <= int(end)
    return int(port) == number


def netpol_types(policy: Obj) -> set[str]:
    spec = policy.spec
    types = spec.get("policyTypes")
    if types:
        return set(types)
    out = {"Ingress"}
    if "egress" in spec:
        out.add("Egress")
    return out


def selecting_policies(index: Index, workload: Obj) -> list[Obj]:
    labels = pod_labels(workload)
    return [
        p for p in index.kind("NetworkPolicy")
        if p.namespace == workload.namespace and label_selector_matches(p.spec.get("podSelector"), labels)
    ]


def peer_only(peer: dict, key: str) -> bool:
    return isinstance(peer, dict) and key in peer and not any(k in peer for k in ("namespaceSelector", "podSelector", "ipBlock") if k != key)


def peer_reaches_kube_dns(peer: dict, namespace: str) -> bool:
    if not isinstance(peer, dict):
        return False
    if "ipBlock" in peer:
        cidr = str((peer.get("ipBlock") or {}).get("cidr", ""))
        return cidr in ("0.0.0.0/0", "::/0") and not (peer.get("ipBlock") or {}).get("except")
    ns_ok = True
    if "namespaceSelector" in peer:
        ns_ok = label_selector_matches(
            peer.get("namespaceSelector"),
            {"kubernetes.io/metadata.name": "kube-system"},
        )
    elif namespace != "kube-system":
        ns_ok = False
    pod_ok = label_selector_matches(peer.get("podSelector"), {"k8s-app": "kube-dns"}) if "podSelector" in peer else True
    return ns_ok and pod_ok


# --------------------------------------------------------------------------------------------
# Rules. A check takes the Index and yields (object, message); @rule attaches the rule id, so
# a check can never report under another rule's id.

Rule = Callable[[Index], Iterator[Finding]]
Reports = Iterator[tuple[Obj, str]]  # (object, message) pairs
Check = Callable[[Index], Reports]
REGISTRY: dict[str, Rule] = {}


def rule(rule_id: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        assert rule_id in RULES, rule_id

        def findings(index: Index) -> Iterator[Finding]:
            for obj, message in check(index):
                yield Finding(rule_id, obj, message)
        REGISTRY[rule_id] = findings
        return check
    return register


ContainerCheck = Callable[[Index, Obj, dict], Iterator[str]]


def container_rule(rule_id: str, init: bool = True) -> Callable[[ContainerCheck], ContainerCheck]:
    """A rule about each container of each workload (init containers too unless init=False).

    The check yields messages; each becomes a finding on the workload, prefixed with
    "container <name>: ", so the loops and the prefix are written once, here.
    """
    def register(check: ContainerCheck) -> ContainerCheck:
        @rule(rule_id)
        def each_container(index: Index) -> Reports:
            for w in index.workloads():
                for c in containers(w, init=init):
                    for message in check(index, w, c):
                        yield w, f"container {c.get('name')}: {message}"
        return check
    return register


@rule("selector-mismatch")
def _selector_mismatch(index: Index) -> Reports:
    for w in index.kind(*SELECTOR_KINDS):
        selector = (w.spec.get("selector") or {}).get("matchLabels") or {}
        labels = pod_labels(w)
        if not selector:
            yield w, "spec.selector.matchLabels is empty or missing"
            continue
        bad = {k: v for k, v in selector.items() if labels.get(k) != v}
        if bad:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            yield w, f"selector labels {shown} are not on the pod template"


@rule("service-no-endpoints")
def _service_no_endpoints(index: Index) -> Reports:
    for svc in index.kind("Service"):
        selector = svc.spec.get("selector") or {}
        if not selector or svc.spec.get("type") == "ExternalName":
            continue
        if not index.pods_selected(svc.namespace, selector):
            shown = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
            yield svc, f"selector {shown} matches no pod template in the set"


@rule("service-targetport")
def _service_targetport(index: Index) -> Reports:
    for svc in index.kind("Service"):
        selector = svc.spec.get("selector") or {}
        if not selector:
            continue
        pods = index.pods_selected(svc.namespace, selector)
        if not pods:
            continue
        for port in svc.spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for w in pods:
                if not any(port_declared(c, target) for c in containers(w, init=False)):
                    yield svc, (
                        f"port {port.get('name') or port.get('port')}: targetPort {target} is not a container port of {w.kind}/{w.name}"
                    )


@container_rule("probe-port", init=False)
def _probe_port(index: Index, w: Obj, c: dict) -> Iterator[str]:
    for probe_name in PROBES:
        probe = c.get(probe_name) or {}
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = (probe.get(handler) or {}).get("port")
            if port is not None and not port_declared(c, port):
                yield f"{probe_name} {handler} port {port} is not a declared container port"


@container_rule("liveness-failure-threshold", init=False)
def _liveness_failure_threshold(index: Index, w: Obj, c: dict) -> Iterator[str]:
    live = c.get("livenessProbe")
    if live is not None and int(live.get("failureThreshold", 3)) < 3:
        yield f"livenessProbe failureThreshold {live.get('failureThreshold')} < 3 restarts pods on one blip"
    if w.kind in ("Deployment", "StatefulSet"):
        missing = [p for p in ("livenessProbe", "readinessProbe") if not c.get(p)]
        if missing:
            yield f"no {' and no '.join(missing)}"


@container_rule("liveness-depends-on-deps", init=False)
def _liveness_depends_on_deps(index: Index, w: Obj, c: dict) -> Iterator[str]:
    live = (c.get("livenessProbe") or {}).get("httpGet") or {}
    ready = (c.get("readinessProbe") or {}).get("httpGet") or {}
    path = live.get("path")
    if not path:
        return
    if path == ready.get("path"):
        yield f"livenessProbe uses the readiness path {path}; a dependency outage would restart every pod"
    elif "ready" in str(path).lower():
        yield f"livenessProbe path {path} is a readiness check"


@container_rule("env-host-unknown")
def _env_host_unknown(index: Index, w: Obj, c: dict) -> Iterator[str]:
    for name, value, _item in resolved_env(index, w, c):
        for host in env_hosts(name, value):
            if "$(" in host or "{" in host:
                continue
            services = host_services(index, w.namespace, host)
            if services is None or services:
                continue
            where = "an IP address, not a Service" if is_ip(host) else "not a Service in the set"
            yield f"{name} names host {host!r}, {where}"


@rule("redis-password-unwired")
def _redis_password_unwired(index: Index) -> Reports:
    for redis in index.workloads():
        for rc in containers(redis, init=False):
            if not is_redis_container(rc):
                continue
            why = redis_requires_password(index, redis, rc)
            if not why:
                continue
            redis_services = {
                s.name for s in index.services(redis.namespace)
                if s.spec.get("selector") and labels_match(s.spec["selector"], pod_labels(redis))
            }
            for client in index.workloads():
                if client is redis:
                    continue
                for c in containers(client):
                    if is_redis_container(c):
                        continue
                    env = resolved_env(index, client, c)
                    points = False
                    for name, value, _item in env:
                        for host in env_hosts(name, value):
                            found = host_services(index, client.namespace, host)
                            if any(s.namespace == redis.namespace and s.name in redis_services for s in found or []):
                                points = True
                            # A REDIS_* host variable in the Redis's namespace means to reach it even when
                            # the name is wrong (env-host-unknown reports that part separately).
                            elif found == [] and name.startswith("REDIS_") and client.namespace == redis.namespace:
                                points = True
                    if not points:
                        continue
                    if not redis_password_wired(client, c, env):
                        yield client, (
                            f"container {c.get('name')} talks to {redis.kind}/{redis.name}, which requires a password ({why}), "
                            "but gets neither REDIS_PASSWORD_FILE on a mounted Secret nor REDIS_PASSWORD from a secretKeyRef"
                        )


def redis_password_wired(obj: Obj, container: dict, env: list[tuple[str, str | None, dict | None]]) -> bool:
    mounts = volume_mount_targets(obj, container)
    for name, value, item in env:
        if name == "REDIS_PASSWORD_FILE" and value:
            if any(under(value, path) and volume_has_secret(vol) for path, vol in mounts):
                return True
        if name == "REDIS_PASSWORD" and item is not None:
            if ((item.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name"):
                return True
    return False


@container_rule("memory-limit-missing")
def _memory_limit_missing(index: Index, w: Obj, c: dict) -> Iterator[str]:
    res = c.get("resources") or {}
    missing = []
    if not (res.get("limits") or {}).get("memory"):
        missing.append("limits.memory")
    for key in ("memory", "cpu"):
        if not (res.get("requests") or {}).get(key):
            missing.append(f"requests.{key}")
    if missing:
        yield f"no {', '.join(missing)}"


def hpa_target(index: Index, hpa: Obj) -> Obj | None:
    ref = hpa.spec.get("scaleTargetRef") or {}
    kind = str(ref.get("kind", ""))
    if kind not in SCALABLE_KINDS:
        return None
    return index.find(kind, hpa.namespace, str(ref.get("name", "")))


@rule("hpa-target-missing")
def _hpa_target_missing(index: Index) -> Reports:
    for hpa in index.kind("HorizontalPodAutoscaler"):
        if hpa_target(index, hpa) is None:
            ref = hpa.spec.get("scaleTargetRef") or {}
            yield hpa, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not a Deployment/StatefulSet in the set"


def hpa_cpu_containers(hpa: Obj) -> tuple[bool, set[str] | None]:
    """(scales on CPU, container names it concerns or None for all)."""
    spec = hpa.spec
    if spec.get("targetCPUUtilizationPercentage") is not None:
        return True, None
    names: set[str] = set()
    whole_pod = False
    for m in spec.get("metrics") or []:
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
            whole_pod = True
        if m.get("type") == "ContainerResource" and (m.get("containerResource") or {}).get("name") == "cpu":
            names.add(str((m.get("containerResource") or {}).get("container")))
    if whole_pod:
        return True, None
    return bool(names), names or None


@rule("hpa-cpu-without-request")
def _hpa_cpu_without_request(index: Index) -> Reports:
    for hpa in index.kind("HorizontalPodAutoscaler"):
        target = hpa_target(index, hpa)
        scales, names = hpa_cpu_containers(hpa)
        if target is None or not scales:
            continue
        for c in containers(target, init=False):
            if names is not None and c.get("name") not in names:
                continue
            if not ((c.get("resources") or {}).get("requests") or {}).get("cpu"):
                yield hpa, f"scales {target.kind}/{target.name} on CPU but container {c.get('name')} has no requests.cpu"


@rule("hpa-fixed-replicas")
def _hpa_fixed_replicas(index: Index) -> Reports:
    for hpa in index.kind("HorizontalPodAutoscaler"):
        target = hpa_target(index, hpa)
        if target is not None and target.spec.get("replicas") is not None:
            yield target, (
                f"sets spec.replicas={target.spec['replicas']} but HorizontalPodAutoscaler/{hpa.name} owns the count; every apply resets it"
            )


def effective_replicas(index: Index, workload: Obj) -> int:
    for hpa in index.kind("HorizontalPodAutoscaler"):
        if hpa_target(index, hpa) is workload:
            return int(hpa.spec.get("minReplicas", 1))
    replicas = workload.spec.get("replicas")
    return 1 if replicas is None else int(replicas)


def _amount(value: Any, replicas: int, round_up: bool) -> int:
    text = str(value)
    if text.endswith("%"):
        fraction = float(text[:-1]) / 100 * replicas
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value)


@rule("pdb-blocks-drain")
def _pdb_blocks_drain(index: Index) -> Reports:
    for pdb in index.kind("PodDisruptionBudget"):
        spec = pdb.spec
        if "maxUnavailable" in spec and spec["maxUnavailable"] is not None:
            if str(spec["maxUnavailable"]) in ("0", "0%"):
                yield pdb, "maxUnavailable 0 forbids every eviction; node drains hang"
            continue
        if "minAvailable" not in spec or spec["minAvailable"] is None:
            continue
        min_available = spec["minAvailable"]
        if str(min_available) == "100%":
            yield pdb, 'minAvailable "100%" forbids every eviction; node drains hang'
            continue
        selector = pdb.spec.get("selector") or {}
        targets = [w for w in index.kind(*SCALABLE_KINDS) if w.namespace == pdb.namespace
                   and label_selector_matches(selector, pod_labels(w))]
        if not targets:
            continue
        replicas = sum(effective_replicas(index, w) for w in targets)
        needed = _amount(min_available, replicas, round_up=True)
        if needed >= replicas:
            yield pdb, (
                f"minAvailable {min_available} >= the {replicas} replica(s) of {', '.join(w.kind + '/' + w.name for w in targets)}; no pod can ever be evicted"
            )


def prestop_seconds(container: dict) -> int | None:
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if pre.get("sleep") and pre["sleep"].get("seconds") is not None:
        return int(pre["sleep"]["seconds"])
    command = (pre.get("exec") or {}).get("command") or []
    if command:
        words = [str(w) for w in command]
        if len(words) >= 2 and words[0].rsplit("/", 1)[-1] == "sleep" and words[1].isdigit():
            return int(words[1])
        match = SLEEP_CMD.search(" ".join(words))
        if match:
            return int(match.group(1))
    return None


def anti_affinity_across_nodes(workload: Obj) -> bool:
    """Whether the pods repel each other per node (required or preferred anti-affinity on
    kubernetes.io/hostname selecting the workload's own pods)."""
    anti = ((pod_spec(workload) or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    terms = list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    terms += [(t or {}).get("podAffinityTerm") or {} for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
    return any(
        t.get("topologyKey") == "kubernetes.io/hostname" and label_selector_matches(t.get("labelSelector"), pod_labels(workload))
        for t in terms
    )


@rule("replicated-unprotected")
def _replicated_unprotected(index: Index) -> Reports:
    # Replicas of a StatefulSet are usually peers of one replicated system (Redis + Sentinel):
    # two on one node, or a drain evicting several at once, can take its majority.
    for sts in index.kind("StatefulSet"):
        replicas = effective_replicas(index, sts)
        if replicas < 2:
            continue
        pdbs = [p for p in index.kind("PodDisruptionBudget") if p.namespace == sts.namespace
                and label_selector_matches(p.spec.get("selector") or {}, pod_labels(sts))]
        if not pdbs:
            yield sts, f"{replicas} replicas but no PodDisruptionBudget selects its pods; a drain may evict them all at once"
        if not anti_affinity_across_nodes(sts):
            yield sts, f"{replicas} replicas but no pod anti-affinity on kubernetes.io/hostname; several may share one node"


@container_rule("prestop-exceeds-grace", init=False)
def _prestop_exceeds_grace(index: Index, w: Obj, c: dict) -> Iterator[str]:
    grace = (pod_spec(w) or {}).get("terminationGracePeriodSeconds")
    grace = 30 if grace is None else int(grace)
    seconds = prestop_seconds(c)
    if seconds is not None and seconds >= grace:
        yield f"preStop sleeps {seconds}s >= terminationGracePeriodSeconds {grace}; SIGTERM never gets a chance"


@rule("pod-no-networkpolicy")
def _pod_no_networkpolicy(index: Index) -> Reports:
    for w in index.workloads():
        covered: set[str] = set()
        for p in selecting_policies(index, w):
            covered |= netpol_types(p)
        missing = [t for t in ("Ingress", "Egress") if t not in covered]
        if missing:
            yield w, f"pods are not selected by any NetworkPolicy for {' and '.join(missing).lower()}"


@rule("dns-egress-missing")
def _dns_egress_missing(index: Index) -> Reports:
    restricted_ns = {p.namespace for p in index.kind("NetworkPolicy") if "Egress" in netpol_types(p)}
    for w in index.workloads():
        if w.namespace not in restricted_ns:
            continue
        policies = [p for p in selecting_policies(index, w) if "Egress" in netpol_types(p)]
        if not policies:
            continue  # not egress-restricted: pod-no-networkpolicy reports it
        allowed = set()
        for p in policies:
            for egress in p.spec.get("egress") or []:
                peers = egress.get("to") or []
                if peers and not any(peer_reaches_kube_dns(peer, p.namespace) for peer in peers):
                    continue
                ports = egress.get("ports") or []
                for proto in ("UDP", "TCP"):
                    if not ports or any(port_matches(rp, 53, proto, ("dns", "dns-tcp")) for rp in ports):
                        allowed.add(proto)
        missing = [proto for proto in ("UDP", "TCP") if proto not in allowed]
        if missing:
            yield w, (
                f"pods are egress-restricted but no rule allows {'+'.join(missing)} 53 to kube-dns (kube-system, k8s-app=kube-dns)"
            )


def _service_port_conflicts(index: Index, namespace: str, pods: list[Obj], number: int) -> list[str]:
    """Services over `pods` whose port `number` forwards to a different container port."""
    pod_ports = resolve_container_port(pods, number)
    out = []
    for svc in index.services(namespace):
        selector = svc.spec.get("selector") or {}
        if not selector or not any(labels_match(selector, pod_labels(w)) for w in pods):
            continue
        for sp in svc.spec.get("ports") or []:
            if sp.get("port") != number:
                continue
            target = sp.get("targetPort", sp.get("port"))
            resolved = resolve_container_port([w for w in pods if labels_match(selector, pod_labels(w))], target)
            if resolved and number not in resolved and not pod_ports:
                out.append(f"{svc.name}:{number} -> container port {'/'.join(str(p) for p in sorted(resolved))}")
    return out


@rule("netpol-service-port")
def _netpol_service_port(index: Index) -> Reports:
    for p in index.kind("NetworkPolicy"):
        selected = [w for w in index.workloads() if w.namespace == p.namespace
                    and label_selector_matches(p.spec.get("podSelector"), pod_labels(w))]
        checks: list[tuple[str, list[Obj], list[dict]]] = []
        for ing in p.spec.get("ingress") or []:
            checks.append(("ingress", selected, ing.get("ports") or []))
        for eg in p.spec.get("egress") or []:
            dest: list[Obj] = []
            for peer in eg.get("to") or []:
                if peer_only(peer, "podSelector"):
                    dest += [w for w in index.workloads() if w.namespace == p.namespace
                             and label_selector_matches(peer.get("podSelector"), pod_labels(w))]
            checks.append(("egress", dest, eg.get("ports") or []))
        for direction, pods, ports in checks:
            if not pods:
                continue
            for rp in ports:
                port = rp.get("port")
                if not isinstance(port, int):
                    continue
                for conflict in _service_port_conflicts(index, p.namespace, pods, port):
                    yield p, f"{direction} allows port {port}, the Service port ({conflict}); NetworkPolicies see pod ports"


@rule("netpol-or-selector")
def _netpol_or_selector(index: Index) -> Reports:
    for p in index.kind("NetworkPolicy"):
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for i, r in enumerate(p.spec.get(direction) or []):
                peers = r.get(key) or []
                if any(peer_only(x, "namespaceSelector") for x in peers) and any(peer_only(x, "podSelector") for x in peers):
                    yield p, (
                        f"{direction}[{i}].{key} has a namespaceSelector-only peer and a podSelector-only peer; they are OR-ed "
                        "(any pod of those namespaces, or those pods in this namespace). Put both selectors in ONE peer"
                    )


def _credential_key(name: str, value: str | None) -> bool:
    if not CREDENTIAL_NAME.search(name):
        return False
    # NAME_FILE=/path points at a mounted Secret file: that is the recommended wiring.
    return not (name.upper().endswith("_FILE") and (value or "").startswith("/"))


@rule("configmap-credentials")
def _configmap_credentials(index: Index) -> Reports:
    for cm in index.kind("ConfigMap"):
        for key, value in sorted((cm.doc.get("data") or {}).items()):
            text = "" if value is None else str(value)
            if _credential_key(str(key), text):
                yield cm, f"key {key} looks like a credential; use a Secret"
            elif URL_WITH_PASSWORD.search(text):
                yield cm, f"key {key} holds a URL with user:password@; use a Secret"
            elif REQUIREPASS_LINE.search(text):
                yield cm, f"key {key} sets requirepass in clear text; include it from a Secret"


@container_rule("env-literal-secret")
def _env_literal_secret(index: Index, w: Obj, c: dict) -> Iterator[str]:
    for item in c.get("env") or []:
        if not isinstance(item, dict) or "value" not in item or item.get("value") in (None, ""):
            continue
        name, value = str(item.get("name", "")), str(item["value"])
        if _credential_key(name, value):
            yield f"{name} has a literal value; use valueFrom.secretKeyRef or a mounted Secret file"
        elif URL_WITH_PASSWORD.search(value):
            yield f"{name} embeds user:password@ in a literal URL"


def image_tag(image: str) -> str | None:
    """The tag of an image reference; None when there is none; '@' for digest references."""
    if "@" in image:
        return "@"
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


@container_rule("image-mutable-tag")
def _image_mutable_tag(index: Index, w: Obj, c: dict) -> Iterator[str]:
    image = str(c.get("image", ""))
    tag = image_tag(image)
    if tag not in (None, "latest"):
        return
    what = "has no tag" if tag is None else "uses the mutable tag latest"
    policy = c.get("imagePullPolicy")
    extra = "; with imagePullPolicy IfNotPresent nodes keep running whatever they cached" if policy == "IfNotPresent" else ""
    yield f"image {image} {what}{extra}"


@container_rule("run-as-root")
def _run_as_root(index: Index, w: Obj, c: dict) -> Iterator[str]:
    pod_sc = (pod_spec(w) or {}).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    problems = []
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if non_root is not True:
        problems.append("runAsNonRoot is not true")
    if user == 0:
        problems.append("runAsUser is 0")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("privileged") is True:
        problems.append("privileged is true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities.drop lacks ALL")
    if problems:
        yield ", ".join(problems)


def configured_port(index: Index, obj: Obj, container: dict) -> tuple[str, int] | None:
    args = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    for i, a in enumerate(args):
        if a in ("--port", "-p") and i + 1 < len(args) and args[i + 1].isdigit():
            return f"{a} {args[i + 1]}", int(args[i + 1])
        if a.startswith("--port=") and a[7:].isdigit():
            return a, int(a[7:])
    port = None
    for name, value, _item in resolved_env(index, obj, container):
        if name == "PORT" and value and value.strip().isdigit():
            port = ("PORT=" + value.strip(), int(value))
    return port


@container_rule("container-port-mismatch", init=False)
def _container_port_mismatch(index: Index, w: Obj, c: dict) -> Iterator[str]:
    configured = configured_port(index, w, c)
    if configured is None:
        return
    ports = container_ports(c)
    http = [p for p in ports if p.get("name") == "http"]
    declared = http[0] if http else (ports[0] if len(ports) == 1 else None)
    if declared is None:
        return
    if declared.get("containerPort") != configured[1]:
        label = declared.get("name") or "the only port"
        yield f"{configured[0]} but containerPort {label} is {declared.get('containerPort')}"


@rule("namespace-pod-security")
def _namespace_pod_security(index: Index) -> Reports:
    for ns in index.kind("Namespace"):
        value = (ns.meta.get("labels") or {}).get(PSS_LABEL)
        if value != "restricted":
            yield ns, f"label {PSS_LABEL} is {value!r}, expected 'restricted'"


def _service_port_exists(svc: Obj, port: dict | None) -> bool:
    port = port or {}
    ports = svc.spec.get("ports") or []
    if "name" in port:
        return any(p.get("name") == port["name"] for p in ports)
    if "number" in port:
        return any(p.get("port") == port["number"] for p in ports)
    return len(ports) == 1


def _ingress_backends(ing: Obj) -> list[dict]:
    spec = ing.spec
    out = []
    default = (spec.get("defaultBackend") or {}).get("service")
    if default:
        out.append(default)
    for r in spec.get("rules") or []:
        for path in ((r.get("http") or {}).get("paths")) or []:
            svc = (path.get("backend") or {}).get("service")
            if svc:
                out.append(svc)
    return out


@rule("entry-point-missing")
def _entry_point_missing(index: Index) -> Reports:
    entry_ns: set[str] = set()
    for ing in index.kind("Ingress"):
        entry_ns.add(ing.namespace)
        for backend in _ingress_backends(ing):
            svc = index.find("Service", ing.namespace, str(backend.get("name", "")))
            if svc is None:
                yield ing, f"backend Service {backend.get('name')} is not in the set: the Ingress routes nowhere"
            elif not _service_port_exists(svc, backend.get("port")):
                yield ing, f"backend port {backend.get('port')} is not a port of Service {svc.name}"
    for route in index.kind(*ROUTE_KINDS):
        entry_ns.add(route.namespace)
        for r in route.spec.get("rules") or []:
            for ref in r.get("backendRefs") or []:
                if ref.get("kind", "Service") != "Service":
                    continue
                ns = ref.get("namespace") or route.namespace
                if index.find("Service", ns, str(ref.get("name", ""))) is None:
                    yield route, f"backendRef Service {ns}/{ref.get('name')} is not in the set: the route leads nowhere"
    for svc in index.kind("Service"):
        if svc.spec.get("type") in ("LoadBalancer", "NodePort"):
            entry_ns.add(svc.namespace)
    served: dict[str, list[Obj]] = {}
    for svc in index.kind("Service"):
        selector = svc.spec.get("selector") or {}
        if selector and index.pods_selected(svc.namespace, selector):
            served.setdefault(svc.namespace, []).append(svc)
    for ns, services in sorted(served.items()):
        if ns in entry_ns:
            continue
        where = index.find("Namespace", "-", ns) or sorted(services, key=lambda o: o.name)[0]
        yield where, (
            f"no Ingress, Gateway API route or LoadBalancer/NodePort Service in {ns}: no client outside the "
            f"cluster can reach {', '.join(sorted(s.name for s in services))} (a port-forward smoke test still passes)"
        )


@rule("monitoring-unselected")
def _monitoring_unselected(index: Index) -> Reports:
    for obj in index.kind(*MONITORING_KINDS):
        labels = obj.meta.get("labels") or {}
        missing = [k for k in SELECTION_LABELS if not labels.get(k)]
        if missing:
            yield obj, (
                f"no {'/'.join(missing)} label: a kube-prometheus-stack Prometheus selects {obj.kind}s by "
                f"{', '.join(SELECTION_LABELS)} and never loads this one"
            )
        if obj.kind in ("ServiceMonitor", "PodMonitor") and (obj.spec.get("namespaceSelector") or {}).get("any"):
            yield obj, "namespaceSelector.any: true scrapes every namespace's matching Services/Pods"


def promql_selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: value} of the =/=~ matchers) of every vector selector in `expr`.

    A small tokenizer (same approach as monitoring/tools/promql_names.py): strings, ranges,
    grouping label lists, functions and keywords are skipped; what remains are selectors.
    """
    token_re = re.compile(r"""
        (?P<ws>\s+) | (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z0-9_]*)
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@:])""", re.VERBOSE)
    grouping = {"by", "without", "on", "ignoring", "group_left", "group_right"}
    keywords = grouping | {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = token_re.match(expr, pos)
        if not m:
            return []  # not PromQL we understand: report nothing rather than guess
        pos = m.end()
        if m.lastgroup not in ("ws", "comment"):
            tokens.append((m.lastgroup or "", m.group()))

    def skip(i: int, open_: str, close: str) -> int:
        depth = 0
        while i < len(tokens):
            depth += tokens[i][1] == open_
            depth -= tokens[i][1] == close
            i += 1
            if depth == 0:
                return i
        return i

    def matchers(i: int) -> tuple[int, dict[str, str]]:
        out: dict[str, str] = {}
        i += 1
        while i < len(tokens) and tokens[i][1] != "}":
            if tokens[i][1] == "," or i + 2 >= len(tokens):
                i += 1
                continue
            label, op, value = tokens[i][1].strip("\"'`"), tokens[i + 1][1], tokens[i + 2][1]
            if op in ("=", "=~") and len(value) > 2:
                out[label] = value[1:-1]
            i += 3
        return i + 1, out

    found = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "[":
            i = skip(i, "[", "]")
        elif text == "{":
            i, labels = matchers(i)
            found.append((labels.pop("__name__", ""), labels))
        elif kind == "ident" and text.lower() in grouping:
            i += 1
            if i < len(tokens) and tokens[i][1] == "(":
                i = skip(i, "(", ")")
        elif kind == "ident" and text.lower() == "offset":
            i += 2
        elif kind == "ident" and (text.lower() in keywords or nxt == "(" or nxt.lower() in grouping):
            i += 1
        elif kind == "ident":
            i += 1
            labels = {}
            if i < len(tokens) and tokens[i][1] == "{":
                i, labels = matchers(i)
            found.append((text, labels))
        else:
            i += 1
    return found


@rule("rule-selector-unscoped")
def _rule_selector_unscoped(index: Index) -> Reports:
    for obj in index.kind("PrometheusRule"):
        for group in obj.spec.get("groups") or []:
            for r in group.get("rules") or []:
                name = r.get("alert") or r.get("record") or "?"
                for metric, labels in promql_selectors(str(r.get("expr", ""))):
                    if not any(labels.get(k) for k in SCOPE_LABELS):
                        yield obj, (
                            f"{group.get('name')}/{name}: selector {metric or '{...}'} has no namespace matcher: "
                            "another namespace's series of the same job/container/HPA name fire it, and absent() stays silent"
                        )


def configmap_references(obj: Obj) -> list[tuple[str, str]]:
    """(where, ConfigMap name) for every ConfigMap the pod template uses."""
    out = []
    spec = pod_spec(obj) or {}
    for c in containers(obj):
        for src in c.get("envFrom") or []:
            ref = (src or {}).get("configMapRef")
            if ref and ref.get("name"):
                out.append((f"container {c.get('name')} envFrom", str(ref["name"])))
        for item in c.get("env") or []:
            ref = ((item or {}).get("valueFrom") or {}).get("configMapKeyRef")
            if ref and ref.get("name"):
                out.append((f"container {c.get('name')} env {item.get('name')}", str(ref["name"])))
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if (v.get("configMap") or {}).get("name"):
            out.append((f"volume {v.get('name')}", str(v["configMap"]["name"])))
        for src in (v.get("projected") or {}).get("sources") or []:
            if ((src or {}).get("configMap") or {}).get("name"):
                out.append((f"volume {v.get('name')}", str(src["configMap"]["name"])))
    return out


@rule("configmap-mutable")
def _configmap_mutable(index: Index) -> Reports:
    for w in index.workloads():
        seen = set()
        for where, name in configmap_references(w):
            cm = index.find("ConfigMap", w.namespace, name)
            if cm is None or cm.doc.get("immutable") is True or (where, name) in seen:
                continue
            seen.add((where, name))
            yield w, (
                f"{where}: ConfigMap {name} is mutable; a config change edits it in place, so `rollout undo` restores "
                "the pod template but keeps the new config. Name it after a hash of its data and set immutable: true"
            )


@container_rule("image-no-digest")
def _image_no_digest(index: Index, w: Obj, c: dict) -> Iterator[str]:
    image = str(c.get("image", ""))
    if not re.search(r"@sha256:[0-9a-f]{64}$", image):
        yield f"image {image} is not pinned by digest; a re-pushed tag changes what runs, and nodes pulling at different times run different code"


# --------------------------------------------------------------------------------------------
# Driver


def expand_paths(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(raw)
    return out


def load_objects(paths: Iterable[str]) -> list[Obj]:
    objects: list[Obj] = []
    for path in expand_paths(paths):
        with open(path, encoding="utf-8") as handle:
            docs = list(yaml.safe_load_all(handle))
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else [doc]
            for item in items or []:
                if isinstance(item, dict) and item.get("kind"):
                    objects.append(Obj(item, str(path), len(objects)))
    return objects


def evaluate(objects: list[Obj], rules: Iterable[str] | None = None) -> tuple[list[Finding], list[str]]:
    """Run the rules over the set. Returns (findings, notes about skips)."""
    index = Index(objects)
    findings: list[Finding] = []
    notes: list[str] = []
    for rule_id in rules or REGISTRY:
        for f in REGISTRY[rule_id](index):
            reason = f.obj.skip_reason(f.rule)
            if reason is not None and reason.strip():
                notes.append(f"note: {f.rule} {f.obj.file} {f.obj.ref}: skipped: {reason.strip()}")
                continue
            if reason is not None:
                notes.append(f"note: {f.rule} {f.obj.file} {f.obj.ref}: skip annotation without a reason is ignored")
            findings.append(f)
    unique = {(f.rule, f.obj.file, f.obj.index, f.message): f for f in findings}
    return sorted(unique.values(), key=Finding.sort_key), sorted(set(notes))


def format_finding(f: Finding, as_json: bool) -> str:
    if as_json:
        return json.dumps({"rule": f.rule, "file": f.obj.file, "object": f.obj.ref, "message": f.message}, sort_keys=True)
    return f"{f.rule} {f.obj.file} {f.obj.ref}: {f.message}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="users-platform manifest policy checks")
    parser.add_argument("--json", action="store_true", help="one JSON object per finding")
    parser.add_argument("--list-rules", action="store_true", help="print the rule ids and exit")
    parser.add_argument("--selection-label", action="append", metavar="KEY",
                        help="label the Prometheus resource selects monitoring objects by (repeatable; default: release)")
    parser.add_argument("paths", nargs="*", metavar="FILE_OR_DIR")
    args = parser.parse_args(argv)
    if args.list_rules:
        for rule_id, text in RULES.items():
            print(f"{rule_id}  {text}")
        return 0
    if not args.paths:
        parser.error("at least one FILE_OR_DIR is required")
    if args.selection_label:
        global SELECTION_LABELS
        SELECTION_LABELS = tuple(args.selection_label)
    try:
        objects = load_objects(args.paths)
    except (OSError, yaml.YAMLError) as err:
        print(f"policy: {err}", file=sys.stderr)
        return 2
    findings, notes = evaluate(objects)
    for note in notes:
        print(note, file=sys.stderr)
    for f in findings:
        print(format_finding(f, args.json))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
