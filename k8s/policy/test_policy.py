"""Unit tests of k8s/policy/policy.py: every rule has a passing and a failing fixture.

The passing fixture is one small, correct namespace (gateway -> user-service -> redis, with
NetworkPolicies, HPAs, PDBs); each failing fixture is that namespace with one mistake.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import policy  # noqa: E402

NS = "shop"
DIGEST = "sha256:" + "ab" * 32
HARDENED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def _labels(name):
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": NS}


def _meta(name, **extra):
    return {"name": name, "namespace": NS, "labels": _labels(name), **extra}


def _probe(path, **extra):
    return {"httpGet": {"path": path, "port": "http"}, **extra}


def _app(name, port, env, volumes=None, mounts=None):
    container = {
        "name": name,
        "image": f"registry.example/{name}:0123abcd@{DIGEST}",
        "ports": [{"name": "http", "containerPort": port}],
        "env": [{"name": "PORT", "value": str(port)}] + env,
        "envFrom": [{"configMapRef": {"name": name}}],
        "startupProbe": _probe("/health/live", failureThreshold=30),
        "livenessProbe": _probe("/health/live", failureThreshold=3),
        "readinessProbe": _probe("/health/ready"),
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": dict(HARDENED),
    }
    if mounts:
        container["volumeMounts"] = mounts
    spec = {
        "terminationGracePeriodSeconds": 35,
        "securityContext": {"runAsUser": 10001},
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name),
        "spec": {
            "selector": {"matchLabels": _labels(name)},
            "template": {"metadata": {"labels": _labels(name)}, "spec": spec},
        },
    }


def _service(name, port, port_name="http"):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name),
        "spec": {"selector": _labels(name), "ports": [{"name": port_name, "port": port, "targetPort": port_name}]},
    }


def _hpa(name):
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def _pdb(name):
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(name)}},
    }


def _netpol(name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name), "spec": spec}


def _pods(name):
    return {"podSelector": {"matchLabels": _labels(name)}}


def base():
    """A correct namespace; no rule reports anything on it."""
    redis = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta("redis"),
        "spec": {
            "replicas": 1,
            "serviceName": "redis",
            "selector": {"matchLabels": _labels("redis")},
            "template": {
                "metadata": {"labels": _labels("redis")},
                "spec": {
                    "securityContext": {"runAsUser": 10001},
                    "containers": [{
                        "name": "redis",
                        "image": f"registry.example/redis:7.2.5@{DIGEST}",
                        "args": ["/etc/redis/redis.conf"],
                        "ports": [{"name": "redis", "containerPort": 6379}],
                        "livenessProbe": {"tcpSocket": {"port": "redis"}},
                        "readinessProbe": {"tcpSocket": {"port": 6379}},
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
                        "securityContext": dict(HARDENED),
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/redis"},
                            {"name": "auth", "mountPath": "/run/secrets/redis-auth"},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "redis-config"}},
                        {"name": "auth", "secret": {"secretName": "redis-auth"}},
                    ],
                },
            },
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("api-gateway"), "immutable": True,
         "data": {"USER_SERVICE_URL": "http://user-service:3001", "LOG_LEVEL": "info"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("user-service"), "immutable": True,
         "data": {"REDIS_URL": "redis://redis.shop.svc.cluster.local:6379/0"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("redis-config"), "immutable": True,
         "data": {"redis.conf": "appendonly yes\nmaxmemory-policy noeviction\ninclude /run/secrets/redis-auth/auth.conf\n"}},
        # Not referenced by a workload (a Grafana dashboard): may stay mutable.
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("dashboard"), "data": {"d.json": "{}"}},
        _app("api-gateway", 3000, []),
        _app(
            "user-service", 3001,
            [{"name": "REDIS_PASSWORD_FILE", "value": "/var/run/secrets/redis/password"}],
            volumes=[{"name": "redis-auth", "secret": {"secretName": "redis-auth"}}],
            mounts=[{"name": "redis-auth", "mountPath": "/var/run/secrets/redis", "readOnly": True}],
        ),
        redis,
        _service("api-gateway", 3000),
        _service("user-service", 3001),
        _service("redis", 6379, "redis"),
        _hpa("api-gateway"),
        _hpa("user-service"),
        _pdb("api-gateway"),
        _pdb("user-service"),
        _netpol("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _netpol("dns", {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }),
        _netpol("gateway", {**_pods("api-gateway"), "policyTypes": ["Ingress", "Egress"],
                            "ingress": [{"ports": [{"port": 3000}]}],
                            "egress": [{"to": [_pods("user-service")], "ports": [{"port": 3001}]}]}),
        _netpol("user-service", {**_pods("user-service"), "policyTypes": ["Ingress", "Egress"],
                                 "ingress": [{"from": [_pods("api-gateway")], "ports": [{"port": 3001}]}],
                                 "egress": [{"to": [_pods("redis")], "ports": [{"port": 6379}]}]}),
        _netpol("redis", {**_pods("redis"), "policyTypes": ["Ingress", "Egress"],
                          "ingress": [{"from": [_pods("user-service")], "ports": [{"port": 6379}]}]}),
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": _meta("api-gateway"),
         "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example", "http": {"paths": [
             {"path": "/api", "pathType": "Prefix",
              "backend": {"service": {"name": "api-gateway", "port": {"name": "http"}}}}]}}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
         "metadata": {**_meta("api-gateway"), "labels": {**_labels("api-gateway"), "release": "kube-prometheus-stack"}},
         "spec": {"selector": {"matchLabels": _labels("api-gateway")}, "namespaceSelector": {"matchNames": [NS]},
                  "endpoints": [{"port": "http"}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": {**_meta("shop"), "labels": {**_labels("shop"), "release": "kube-prometheus-stack"}},
         "spec": {"groups": [{"name": "shop", "rules": [
             {"record": "job:http_requests:rate5m",
              "expr": f'sum by (namespace, job) (rate(http_requests_total{{namespace="{NS}", job=~"api-gateway|user-service"}}[5m]))'},
             {"alert": "GatewayDown",
              "expr": f'sum by (job) (up{{namespace="{NS}", job="api-gateway"}}) == 0 or absent(up{{namespace="{NS}", job="api-gateway"}})'},
             {"alert": "EdgeErrors",
              "expr": f'sum(rate(nginx_ingress_controller_requests{{exported_namespace="{NS}", status=~"5.."}}[5m])) > 1'},
         ]}]}},
    ]


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise KeyError((kind, name))


def container(objs, kind, name):
    return find(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def run(objs, rule_id=None):
    objects = [policy.Obj(o, "fixture.yaml", i) for i, o in enumerate(objs)]
    findings, _notes = policy.evaluate(objects, [rule_id] if rule_id else None)
    return findings


# ---------------------------------------------------------------------------------------------
# One mutation (the failing fixture) per rule; several rules have more than one.


def m_selector_mismatch(o):
    find(o, "Deployment", "api-gateway")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "gateway"


def m_service_no_endpoints(o):
    find(o, "Service", "user-service")["spec"]["selector"] = {"app": "users"}


def m_service_targetport(o):
    find(o, "Service", "user-service")["spec"]["ports"][0]["targetPort"] = 8080


def m_service_targetport_name(o):
    find(o, "Service", "redis")["spec"]["ports"][0]["targetPort"] = "tcp-redis"


def m_probe_port(o):
    container(o, "Deployment", "api-gateway")["readinessProbe"]["httpGet"]["port"] = 8080


def m_probe_port_name(o):
    container(o, "StatefulSet", "redis")["livenessProbe"]["tcpSocket"]["port"] = "resp"


def m_liveness_threshold(o):
    container(o, "Deployment", "user-service")["livenessProbe"]["failureThreshold"] = 1


def m_liveness_missing(o):
    del container(o, "Deployment", "user-service")["readinessProbe"]


def m_liveness_ready_path(o):
    container(o, "Deployment", "user-service")["livenessProbe"]["httpGet"]["path"] = "/health/ready"


def m_liveness_named_ready(o):
    c = container(o, "Deployment", "user-service")
    c["livenessProbe"]["httpGet"]["path"] = "/readyz"


def m_env_host_unknown(o):
    find(o, "ConfigMap", "api-gateway")["data"]["USER_SERVICE_URL"] = "http://users:3001"


def m_env_host_unknown_host(o):
    container(o, "Deployment", "user-service")["env"].append({"name": "CACHE_HOST", "value": "memcached:11211"})


def m_redis_password_unwired(o):
    c = container(o, "Deployment", "user-service")
    c["env"] = [e for e in c["env"] if e["name"] != "REDIS_PASSWORD_FILE"]


def m_redis_password_not_secret_mount(o):
    spec = find(o, "Deployment", "user-service")["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "redis-auth", "emptyDir": {}}]


def m_redis_requirepass_args(o):
    m_redis_password_unwired(o)
    c = container(o, "StatefulSet", "redis")
    c["args"] = ["--requirepass", "$(REDIS_PASSWORD)"]
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "config"]


def m_redis_password_unwired_wrong_host(o):
    m_redis_password_unwired(o)
    find(o, "ConfigMap", "user-service")["data"]["REDIS_URL"] = "redis://redis.elsewhere.svc.cluster.local:6379/0"


def m_memory_limit(o):
    del container(o, "Deployment", "api-gateway")["resources"]["limits"]


def m_cpu_request(o):
    del container(o, "StatefulSet", "redis")["resources"]["requests"]["cpu"]


def m_hpa_target(o):
    find(o, "HorizontalPodAutoscaler", "api-gateway")["spec"]["scaleTargetRef"]["name"] = "gateway"


def m_hpa_cpu_request(o):
    del container(o, "Deployment", "api-gateway")["resources"]["requests"]["cpu"]


def m_hpa_fixed_replicas(o):
    find(o, "Deployment", "user-service")["spec"]["replicas"] = 3


def m_pdb_max_unavailable_zero(o):
    find(o, "PodDisruptionBudget", "api-gateway")["spec"]["maxUnavailable"] = 0


def pdb_min_available(o, value):
    """user-service's PDB with minAvailable `value` in place of maxUnavailable."""
    spec = find(o, "PodDisruptionBudget", "user-service")["spec"]
    del spec["maxUnavailable"]
    spec["minAvailable"] = value


def m_pdb_min_available_replicas(o):
    pdb_min_available(o, 2)  # == HPA minReplicas


def m_pdb_min_available_all(o):
    pdb_min_available(o, "100%")


def m_prestop_sleep(o):
    container(o, "Deployment", "api-gateway")["lifecycle"]["preStop"]["sleep"]["seconds"] = 35


def m_prestop_exec_default_grace(o):
    c = container(o, "Deployment", "user-service")
    c["lifecycle"]["preStop"] = {"exec": {"command": ["/bin/sh", "-c", "sleep 30"]}}
    del find(o, "Deployment", "user-service")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


def m_pod_no_netpol(o):
    o.remove(find(o, "NetworkPolicy", "default-deny"))
    o.remove(find(o, "NetworkPolicy", "redis"))


def m_pod_no_netpol_egress(o):
    find(o, "NetworkPolicy", "default-deny")["spec"]["policyTypes"] = ["Ingress"]
    find(o, "NetworkPolicy", "dns")["spec"]["podSelector"] = _pods("api-gateway")["podSelector"]
    find(o, "NetworkPolicy", "redis")["spec"]["policyTypes"] = ["Ingress"]


def m_dns_missing(o):
    o.remove(find(o, "NetworkPolicy", "dns"))


def m_dns_udp_only(o):
    find(o, "NetworkPolicy", "dns")["spec"]["egress"][0]["ports"] = [{"protocol": "UDP", "port": 53}]


def m_dns_pod_selector_only(o):
    find(o, "NetworkPolicy", "dns")["spec"]["egress"][0]["to"] = [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]


def m_netpol_service_port(o):
    svc = find(o, "Service", "user-service")
    svc["spec"]["ports"][0]["port"] = 80
    find(o, "NetworkPolicy", "user-service")["spec"]["ingress"][0]["ports"] = [{"port": 80}]


def m_netpol_service_port_egress(o):
    svc = find(o, "Service", "user-service")
    svc["spec"]["ports"][0]["port"] = 80
    find(o, "ConfigMap", "api-gateway")["data"]["USER_SERVICE_URL"] = "http://user-service:80"
    find(o, "NetworkPolicy", "gateway")["spec"]["egress"][0]["ports"] = [{"port": 80}]


def m_netpol_or_selector(o):
    find(o, "NetworkPolicy", "user-service")["spec"]["ingress"].append({
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
        ],
        "ports": [{"port": 3001}],
    })


def m_configmap_key(o):
    find(o, "ConfigMap", "user-service")["data"]["REDIS_PASSWORD"] = "hunter2"


def m_configmap_url(o):
    find(o, "ConfigMap", "user-service")["data"]["REDIS_URL"] = "redis://default:hunter2@redis:6379/0"


def m_configmap_requirepass(o):
    find(o, "ConfigMap", "redis-config")["data"]["redis.conf"] = "appendonly yes\nrequirepass hunter2\n"


def m_env_literal(o):
    container(o, "Deployment", "user-service")["env"].append({"name": "API_TOKEN", "value": "abc"})


def m_env_literal_password(o):
    c = container(o, "Deployment", "user-service")
    c["env"] = [{"name": "PORT", "value": "3001"}, {"name": "REDIS_PASSWORD", "value": "hunter2"}]


def m_image_latest(o):
    container(o, "Deployment", "api-gateway")["image"] = "registry.example/api-gateway:latest"


def m_image_no_tag(o):
    c = container(o, "StatefulSet", "redis")
    c["image"] = "registry.example:5000/redis"
    c["imagePullPolicy"] = "IfNotPresent"


def m_run_as_root(o):
    del container(o, "Deployment", "api-gateway")["securityContext"]["runAsNonRoot"]


def m_run_as_root_caps(o):
    sc = container(o, "StatefulSet", "redis")["securityContext"]
    sc["capabilities"] = {"drop": ["NET_RAW"]}
    sc["readOnlyRootFilesystem"] = False


def m_container_port(o):
    container(o, "Deployment", "api-gateway")["env"][0]["value"] = "8080"


def m_container_port_configmap(o):
    c = container(o, "Deployment", "user-service")
    c["env"] = [e for e in c["env"] if e["name"] != "PORT"]
    find(o, "ConfigMap", "user-service")["data"]["PORT"] = "3002"


def m_namespace_pss(o):
    find(o, "Namespace", NS)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"


def m_no_ingress(o):
    o.remove(find(o, "Ingress", "api-gateway"))


def m_ingress_backend_missing(o):
    find(o, "Ingress", "api-gateway")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "gateway"


def m_ingress_backend_port(o):
    find(o, "Ingress", "api-gateway")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"number": 80}


def m_service_monitor_no_release(o):
    del find(o, "ServiceMonitor", "api-gateway")["metadata"]["labels"]["release"]


def m_prometheus_rule_no_release(o):
    del find(o, "PrometheusRule", "shop")["metadata"]["labels"]["release"]


def m_service_monitor_any_namespace(o):
    find(o, "ServiceMonitor", "api-gateway")["spec"]["namespaceSelector"] = {"any": True}


def _rule_expr(o, name, expr):
    for r in find(o, "PrometheusRule", "shop")["spec"]["groups"][0]["rules"]:
        if name in (r.get("alert"), r.get("record")):
            r["expr"] = expr


def m_rule_unscoped(o):
    _rule_expr(o, "job:http_requests:rate5m", 'sum by (job) (rate(http_requests_total{job=~"api-gateway|user-service"}[5m]))')


def m_rule_absent_unscoped(o):
    _rule_expr(o, "GatewayDown", f'sum by (job) (up{{namespace="{NS}", job="api-gateway"}}) == 0 or absent(up{{job="api-gateway"}})')


def m_rule_unscoped_recorded_series(o):
    _rule_expr(o, "EdgeErrors", "job:http_requests:rate5m > 1")


def m_configmap_mutable_envfrom(o):
    find(o, "ConfigMap", "api-gateway")["immutable"] = False


def m_configmap_mutable_volume(o):
    del find(o, "ConfigMap", "redis-config")["immutable"]


def m_configmap_mutable_key_ref(o):
    find(o, "ConfigMap", "dashboard")["data"]["LOG_LEVEL"] = "info"
    container(o, "Deployment", "user-service")["env"].append(
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "dashboard", "key": "LOG_LEVEL"}}})


def m_image_tag_only(o):
    container(o, "Deployment", "user-service")["image"] = "registry.example/user-service:0123abcd"


def m_image_short_digest(o):
    container(o, "StatefulSet", "redis")["image"] = "registry.example/redis@sha256:abc"


def _replicated_redis(o):
    """The base namespace with Redis as three pods, a PDB and anti-affinity per node."""
    redis = find(o, "StatefulSet", "redis")
    redis["spec"]["replicas"] = 3
    redis["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": _labels("redis")}}]}}
    pdb = _pdb("redis")
    pdb["spec"] = {"minAvailable": 2, "selector": {"matchLabels": _labels("redis")}}
    o.append(pdb)


def m_replicated_without_pdb(o):
    _replicated_redis(o)
    o.remove(find(o, "PodDisruptionBudget", "redis"))


def m_replicated_without_anti_affinity(o):
    _replicated_redis(o)
    del find(o, "StatefulSet", "redis")["spec"]["template"]["spec"]["affinity"]


def m_env_host_unknown_sentinel(o):
    container(o, "Deployment", "user-service")["env"].append(
        {"name": "REDIS_SENTINELS", "value": "redis-0.redis:26379,redis-1.nowhere:26379"})


def m_redis_password_unwired_sentinels(o):
    c = container(o, "Deployment", "user-service")
    c["env"] = [e for e in c["env"] if e["name"] != "REDIS_PASSWORD_FILE"]
    c["env"].append({"name": "REDIS_SENTINELS", "value": "redis-0.redis:26379"})
    find(o, "ConfigMap", "user-service")["data"] = {"REDIS_MASTER_NAME": "users"}


FAILING = [
    ("selector-mismatch", m_selector_mismatch),
    ("service-no-endpoints", m_service_no_endpoints),
    ("service-targetport", m_service_targetport),
    ("service-targetport", m_service_targetport_name),
    ("probe-port", m_probe_port),
    ("probe-port", m_probe_port_name),
    ("liveness-failure-threshold", m_liveness_threshold),
    ("liveness-failure-threshold", m_liveness_missing),
    ("liveness-depends-on-deps", m_liveness_ready_path),
    ("liveness-depends-on-deps", m_liveness_named_ready),
    ("env-host-unknown", m_env_host_unknown),
    ("env-host-unknown", m_env_host_unknown_host),
    ("env-host-unknown", m_env_host_unknown_sentinel),
    ("replicated-unprotected", m_replicated_without_pdb),
    ("replicated-unprotected", m_replicated_without_anti_affinity),
    ("redis-password-unwired", m_redis_password_unwired_sentinels),
    ("redis-password-unwired", m_redis_password_unwired),
    ("redis-password-unwired", m_redis_password_not_secret_mount),
    ("redis-password-unwired", m_redis_requirepass_args),
    ("redis-password-unwired", m_redis_password_unwired_wrong_host),
    ("memory-limit-missing", m_memory_limit),
    ("memory-limit-missing", m_cpu_request),
    ("hpa-target-missing", m_hpa_target),
    ("hpa-cpu-without-request", m_hpa_cpu_request),
    ("hpa-fixed-replicas", m_hpa_fixed_replicas),
    ("pdb-blocks-drain", m_pdb_max_unavailable_zero),
    ("pdb-blocks-drain", m_pdb_min_available_replicas),
    ("pdb-blocks-drain", m_pdb_min_available_all),
    ("prestop-exceeds-grace", m_prestop_sleep),
    ("prestop-exceeds-grace", m_prestop_exec_default_grace),
    ("pod-no-networkpolicy", m_pod_no_netpol),
    ("pod-no-networkpolicy", m_pod_no_netpol_egress),
    ("dns-egress-missing", m_dns_missing),
    ("dns-egress-missing", m_dns_udp_only),
    ("dns-egress-missing", m_dns_pod_selector_only),
    ("netpol-service-port", m_netpol_service_port),
    ("netpol-service-port", m_netpol_service_port_egress),
    ("netpol-or-selector", m_netpol_or_selector),
    ("configmap-credentials", m_configmap_key),
    ("configmap-credentials", m_configmap_url),
    ("configmap-credentials", m_configmap_requirepass),
    ("env-literal-secret", m_env_literal),
    ("env-literal-secret", m_env_literal_password),
    ("image-mutable-tag", m_image_latest),
    ("image-mutable-tag", m_image_no_tag),
    ("run-as-root", m_run_as_root),
    ("run-as-root", m_run_as_root_caps),
    ("container-port-mismatch", m_container_port),
    ("container-port-mismatch", m_container_port_configmap),
    ("namespace-pod-security", m_namespace_pss),
    ("entry-point-missing", m_no_ingress),
    ("entry-point-missing", m_ingress_backend_missing),
    ("entry-point-missing", m_ingress_backend_port),
    ("monitoring-unselected", m_service_monitor_no_release),
    ("monitoring-unselected", m_prometheus_rule_no_release),
    ("monitoring-unselected", m_service_monitor_any_namespace),
    ("rule-selector-unscoped", m_rule_unscoped),
    ("rule-selector-unscoped", m_rule_absent_unscoped),
    ("rule-selector-unscoped", m_rule_unscoped_recorded_series),
    ("configmap-mutable", m_configmap_mutable_envfrom),
    ("configmap-mutable", m_configmap_mutable_volume),
    ("configmap-mutable", m_configmap_mutable_key_ref),
    ("image-no-digest", m_image_tag_only),
    ("image-no-digest", m_image_short_digest),
]


def test_base_fixture_is_clean():
    assert [policy.format_finding(f, False) for f in run(base())] == []


@pytest.mark.parametrize("rule_id", sorted(policy.RULES))
def test_rule_passes_on_good_fixture(rule_id):
    assert run(base(), rule_id) == []


@pytest.mark.parametrize("rule_id,mutate", FAILING, ids=[f"{r}:{m.__name__}" for r, m in FAILING])
def test_rule_fails_on_bad_fixture(rule_id, mutate):
    objs = copy.deepcopy(base())
    mutate(objs)
    found = run(objs, rule_id)
    assert found, f"{rule_id} did not fire for {mutate.__name__}"
    assert all(f.rule == rule_id for f in found)


def test_every_rule_has_a_failing_fixture():
    assert {r for r, _ in FAILING} == set(policy.RULES) == set(policy.REGISTRY)


# Passing fixtures for the edges of individual rules.


def test_dns_namespace_selector_only_is_enough():
    objs = base()
    find(objs, "NetworkPolicy", "dns")["spec"]["egress"][0]["to"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert run(objs, "dns-egress-missing") == []


def test_password_from_secret_key_ref_is_wired():
    objs = base()
    c = container(objs, "Deployment", "user-service")
    c["env"] = [{"name": "PORT", "value": "3001"},
                {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}}}]
    assert run(objs, "redis-password-unwired") == []
    assert run(objs, "env-literal-secret") == []


def test_redis_without_password_needs_no_wiring():
    objs = base()
    m_redis_password_unwired(objs)
    find(objs, "ConfigMap", "redis-config")["data"]["redis.conf"] = "appendonly yes\n"
    assert run(objs, "redis-password-unwired") == []


def test_pdb_min_available_below_replicas_passes():
    objs = base()
    pdb_min_available(objs, 1)
    assert run(objs, "pdb-blocks-drain") == []


def test_host_forms_and_loopback_are_accepted():
    objs = base()
    c = container(objs, "Deployment", "api-gateway")
    c["env"] += [
        {"name": "A_URL", "value": "http://user-service.shop:3001"},
        {"name": "B_URL", "value": "http://user-service.shop.svc:3001/x"},
        {"name": "C_HOST", "value": "localhost"},
        {"name": "D_ADDR", "value": "127.0.0.1:9000"},
    ]
    assert run(objs, "env-host-unknown") == []


def test_digest_reference_is_not_mutable():
    objs = base()
    container(objs, "Deployment", "api-gateway")["image"] = "registry.example/api-gateway@sha256:" + "0" * 64
    assert run(objs, "image-mutable-tag") == []


def test_load_balancer_service_or_http_route_is_an_entry_point():
    objs = base()
    m_no_ingress(objs)
    find(objs, "Service", "api-gateway")["spec"]["type"] = "LoadBalancer"
    assert run(objs, "entry-point-missing") == []
    objs = base()
    m_no_ingress(objs)
    objs.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": _meta("api"),
                 "spec": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                          "rules": [{"backendRefs": [{"name": "api-gateway", "port": 3000}]}]}})
    assert run(objs, "entry-point-missing") == []
    objs[-1]["spec"]["rules"][0]["backendRefs"][0]["name"] = "gone"
    assert [f.obj.kind for f in run(objs, "entry-point-missing")] == ["HTTPRoute"]


def test_missing_entry_point_is_reported_on_the_namespace():
    objs = base()
    m_no_ingress(objs)
    assert [f.obj.ref for f in run(objs, "entry-point-missing")] == [f"Namespace/-/{NS}"]


def test_selection_label_is_configurable(tmp_path):
    objs = base()
    for kind, name in (("ServiceMonitor", "api-gateway"), ("PrometheusRule", "shop")):
        labels = find(objs, kind, name)["metadata"]["labels"]
        del labels["release"]
        labels["prometheus"] = "main"
    path = _write(tmp_path, objs)
    assert _cli(path).returncode == 1
    result = _cli("--selection-label", "prometheus", path)
    assert result.returncode == 0, result.stdout


def test_promql_selectors_skip_strings_ranges_and_groupings():
    expr = ('sum by (namespace, job) (rate(a{namespace="x"}[5m])) / on (job) group_left b:c{slo="y"} '
            'or absent(up{job="z"}) and label_replace(d{exported_namespace="q"}, "namespace", "$1", "e", "(.*)")')
    assert policy.promql_selectors(expr) == [
        ("a", {"namespace": "x"}), ("b:c", {"slo": "y"}), ("up", {"job": "z"}), ("d", {"exported_namespace": "q"})]


# Skips and the command line.


def latest_image_skipped(reason):
    """The gateway on image :latest, with a skip annotation for image-mutable-tag giving `reason`."""
    objs = copy.deepcopy(base())
    m_image_latest(objs)
    find(objs, "Deployment", "api-gateway")["metadata"]["annotations"] = {
        "users-platform.dev/policy-skip.image-mutable-tag": reason,
        "users-platform.dev/policy-skip.image-no-digest": reason,
    }
    return objs


def test_skip_annotation_with_reason_suppresses_and_notes():
    objs = latest_image_skipped("third-party image only published as latest")
    objects = [policy.Obj(o, "f.yaml", i) for i, o in enumerate(objs)]
    findings, notes = policy.evaluate(objects)
    assert findings == []
    assert any("skipped: third-party image" in n for n in notes)


def test_skip_annotation_without_reason_is_ignored():
    assert [f.rule for f in run(latest_image_skipped(""))] == ["image-mutable-tag", "image-no-digest"]


def _write(tmp_path, objs, name="m.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
    return path


def _cli(*args):
    script = Path(__file__).resolve().parent / "policy.py"
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, check=False)


def test_cli_clean_exit_zero(tmp_path):
    _write(tmp_path, base())
    result = _cli(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_cli_line_format_and_exit_one(tmp_path):
    objs = copy.deepcopy(base())
    m_namespace_pss(objs)
    m_hpa_fixed_replicas(objs)
    path = _write(tmp_path, objs)
    result = _cli(path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"namespace-pod-security {path} Namespace/-/{NS}: label pod-security.kubernetes.io/enforce is 'baseline', expected 'restricted'" in lines
    assert any(line.startswith(f"hpa-fixed-replicas {path} Deployment/{NS}/user-service: ") for line in lines)


def test_cli_json(tmp_path):
    objs = copy.deepcopy(base())
    m_probe_port(objs)
    path = _write(tmp_path, objs)
    result = _cli("--json", path)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and set(records[0]) == {"rule", "file", "object", "message"}
    assert records[0]["rule"] == "probe-port"
    assert records[0]["object"] == f"Deployment/{NS}/api-gateway"


def test_cli_cross_file_rules_see_the_whole_set(tmp_path):
    objs = base()
    services = [o for o in objs if o["kind"] == "Service"]
    rest = [o for o in objs if o["kind"] != "Service"]
    _write(tmp_path, rest, "a.yaml")
    _write(tmp_path, services, "b.yml")
    assert _cli(tmp_path).returncode == 0
    assert _cli(tmp_path / "a.yaml").returncode == 1  # env hosts name missing Services


def test_rendered_manifests_are_clean():
    rendered = Path(__file__).resolve().parents[1] / "rendered"
    files = sorted(rendered.glob("*.yaml"))
    if not files:
        pytest.skip("no renders in k8s/rendered/")
    result = _cli(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_replicated_statefulset_with_pdb_and_anti_affinity_passes():
    objs = base()
    _replicated_redis(objs)
    assert run(objs) == []
    # Preferred anti-affinity is accepted too (the trade-off is the manifest's to justify).
    spec = find(objs, "StatefulSet", "redis")["spec"]["template"]["spec"]
    term = spec["affinity"]["podAntiAffinity"].pop("requiredDuringSchedulingIgnoredDuringExecution")[0]
    spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] = [
        {"weight": 100, "podAffinityTerm": term}]
    assert run(objs, "replicated-unprotected") == []


def test_sentinel_list_naming_pods_of_the_headless_service_passes():
    objs = base()
    container(objs, "Deployment", "user-service")["env"].append(
        {"name": "REDIS_SENTINELS", "value": "redis-0.redis:26379, redis-1.redis:26379"})
    assert run(objs) == []
