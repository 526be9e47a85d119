#!/usr/bin/env python3
"""The rules against a real Prometheus scraping the real services.

Starts redis-server (with a password), `users-platform user-service`, `users-platform api-gateway`
and Debian's `prometheus` (scrape and evaluation interval 1s, monitoring/rules.yml loaded), each on
a free port with its state in a temporary directory, then checks through the HTTP API:

  - both targets are up and every rule of every group evaluates with health "ok";
  - the recording rules produce the SLIs, and a healthy stack has no pending or firing alert;
  - every metric that a rule or the dashboard queries is exported by the running services
    (a real /metrics scrape) or is a listed external metric (kube-state-metrics, cAdvisor, `up`);
  - every dashboard query is valid PromQL;
  - after Redis is killed, the expression of RedisUnreachable (without its `for`) becomes true
    and the alert goes pending.

Every wait polls with a deadline; all processes are killed on exit.

Runs under pytest (`python3 -m pytest monitoring/prometheus_test.py`) or standalone
(`python3 monitoring/prometheus_test.py`). Binary: $USERS_PLATFORM_BIN, else target/debug/users-platform.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "monitoring" / "tools"))
from promql_names import selectors  # noqa: E402

RULES = ROOT / "monitoring" / "rules.yml"
DASHBOARD_NIX = ROOT / "k8s" / "monitoring" / "dashboard.nix"

# Metrics the rules and the dashboard may query that the services do not export.
EXTERNAL_METRICS = {
    "up": "Prometheus, per scrape target",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    "kube_horizontalpodautoscaler_status_current_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_spec_max_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_spec_min_replicas": "kube-state-metrics",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_statefulset_status_replicas_ready": "kube-state-metrics",
    "kube_statefulset_replicas": "kube-state-metrics",
    "container_memory_working_set_bytes": "cAdvisor (kubelet)",
    "nginx_ingress_controller_requests": "ingress-nginx controller (the availability SLI at the edge)",
}
# The namespace the rules are scoped to (k8s/monitoring/rules.nix renders rules.yml for prod);
# in a cluster the ServiceMonitor's target labels carry it, here the scrape config adds it.
NAMESPACE = "users-platform-prod"
JOBS = ("api-gateway", "user-service")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

STARTUP_TIMEOUT = 30.0
RULES_TIMEOUT = 30.0
REDIS_ALERT_TIMEOUT = 30.0


# ---- small helpers ---------------------------------------------------------------------------

def _die_with_parent():
    """In the child before exec: get SIGKILL when the test process dies, however it dies."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout, interval=0.2):
    """Poll check() until it returns a truthy value; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError) as e:  # not up yet / not there yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def http(method, url, body=None, timeout=5.0):
    """(status, body text) of one request; HTTP errors are returned, not raised."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def redis_ping(port, password):
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
    return reply == b"+OK\r\n+PONG\r\n"


def metric_families(text):
    """Names of the metric families (and plain sample names) of an exposition-format scrape."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            families[name] = kind.strip()
        elif line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            families.setdefault(name, "untyped")
    return families


def exported(name, families):
    if name in families:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and families.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return True
    return False


def load_rules():
    return yaml.safe_load(RULES.read_text())


def load_dashboard():
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", str(DASHBOARD_NIX)],
                         check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def dashboard_exprs(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def grafana_to_promql(expr):
    """Replace the Grafana variables the dashboard uses by what Grafana would send."""
    return expr.replace("$__rate_interval", "1m").replace("${datasource}", "").replace("$namespace", NAMESPACE)


# ---- the stack ---------------------------------------------------------------------------------

class Stack:
    """redis-server, both services and Prometheus, on free ports, in a temporary directory."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="users-platform-prom-"))
        self.procs = {}
        self.logs = {}
        self.redis_password = secrets.token_hex(16)
        self.ports = {name: free_port() for name in ("redis", "user-service", "api-gateway", "prometheus")}
        self.binary = Path(os.environ.get("USERS_PLATFORM_BIN", ROOT / "target" / "debug" / "users-platform"))

    # -- process handling
    def spawn(self, name, argv, env=None):
        log = open(self.tmp / f"{name}.log", "wb")
        self.logs[name] = self.tmp / f"{name}.log"
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp)}
        full_env.update(env or {})
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                            stdin=subprocess.DEVNULL, cwd=self.tmp,
                                            preexec_fn=_die_with_parent)
        log.close()
        return self.procs[name]

    def kill(self, name):
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def alive(self, name):
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
        return True

    def log_tail(self, name, lines=30):
        try:
            return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self):
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- URLs
    def url(self, service, path):
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def prom(self, path, **params):
        url = self.url("prometheus", path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http("GET", url)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: HTTP {status}: {body[:500]}")
        return doc["data"]

    def query(self, expr):
        return self.prom("/api/v1/query", query=expr)["result"]

    # -- start-up
    def start(self):
        if not self.binary.exists():
            raise AssertionError(f"{self.binary} does not exist: build it (cargo build) or set USERS_PLATFORM_BIN")
        self.start_redis()
        self.start_services()
        self.generate_traffic()
        self.start_prometheus()
        return self

    def start_redis(self):
        port = self.ports["redis"]
        self.spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--requirepass", self.redis_password, "--save", "", "--appendonly", "no",
                             "--dir", str(self.tmp)])
        wait_until("redis-server to answer PING",
                   lambda: self.alive("redis") and redis_ping(port, self.redis_password), STARTUP_TIMEOUT)

    def start_services(self):
        common = {"LOG_FORMAT": "json", "LOG_LEVEL": "info", "SHUTDOWN_DRAIN_SECONDS": "0",
                  "SHUTDOWN_TIMEOUT_SECONDS": "2"}
        self.spawn("user-service", [str(self.binary), "user-service"], dict(
            common, PORT=str(self.ports["user-service"]),
            REDIS_URL=f"redis://127.0.0.1:{self.ports['redis']}/0",
            REDIS_PASSWORD=self.redis_password))
        self.spawn("api-gateway", [str(self.binary), "api-gateway"], dict(
            common, PORT=str(self.ports["api-gateway"]),
            USER_SERVICE_URL=self.url("user-service", "")))
        for name in ("user-service", "api-gateway"):
            wait_until(f"{name} /health/ready to answer 200",
                       lambda name=name: self.alive(name)
                       and http("GET", self.url(name, "/health/ready"), timeout=2)[0] == 200,
                       STARTUP_TIMEOUT)

    def generate_traffic(self):
        """Requests through the gateway touching every route, Redis command and upstream path."""
        gw = lambda path: self.url("api-gateway", path)  # noqa: E731
        status, body = http("POST", gw("/api/users"), {"name": "Ada Lovelace", "email": "ada@example.com"})
        assert status == 201, f"POST /api/users: {status} {body}"
        user_id = json.loads(body)["id"]
        checks = [
            ("GET", gw("/api/users"), None, 200),
            ("GET", gw(f"/api/users/{user_id}"), None, 200),
            ("PATCH", gw(f"/api/users/{user_id}"), {"name": "Ada King"}, 200),
            ("POST", gw("/api/users"), {"name": "Ada Again", "email": "ADA@example.com"}, 409),
            ("GET", gw("/api/users/00000000-0000-4000-8000-000000000000"), None, 404),
            ("POST", gw("/api/users"), {"name": "", "email": "not-an-email"}, None),
            ("GET", gw("/does-not-exist"), None, 404),
            ("GET", self.url("user-service", "/users"), None, 200),
            ("DELETE", gw(f"/api/users/{user_id}"), None, 204),
        ]
        for method, url, body, expected in checks:
            status, text = http(method, url, body)
            assert expected is None or status == expected, f"{method} {url}: {status} {text}"

    def start_prometheus(self):
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{self.ports[job]}"],
                                                      "labels": {"namespace": NAMESPACE}}]}
                for job in JOBS
            ],
        }
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.spawn("prometheus", [
            "prometheus",
            f"--config.file={self.tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
            "--log.level=warn",
        ])
        wait_until("prometheus /-/ready",
                   lambda: self.alive("prometheus")
                   and http("GET", self.url("prometheus", "/-/ready"), timeout=2)[0] == 200,
                   STARTUP_TIMEOUT)


# ---- the checks ------------------------------------------------------------------------------

def check_targets_up(stack):
    def both_up():
        targets = stack.prom("/api/v1/targets", state="active")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if all(health.get(job) == "up" for job in JOBS) else None
    wait_until("both scrape targets to be up", both_up, STARTUP_TIMEOUT)
    result = stack.query('up{job=~"api-gateway|user-service"}')
    assert sorted((r["metric"]["job"], r["value"][1]) for r in result) == [("api-gateway", "1"), ("user-service", "1")], result


def check_rules_healthy(stack):
    expected = {(g["name"], r.get("record") or r.get("alert")) for g in load_rules()["groups"] for r in g["rules"]}

    def all_evaluated():
        groups = stack.prom("/api/v1/rules")["groups"]
        rules = [(g["name"], r) for g in groups for r in g["rules"]]
        if any(r["health"] == "unknown" or r["lastEvaluation"].startswith("0001-") for _, r in rules):
            return None
        return rules
    rules = wait_until("every rule to be evaluated", all_evaluated, RULES_TIMEOUT)
    loaded = {(group, r["name"]) for group, r in rules}
    assert loaded == expected, f"rules loaded by Prometheus differ from rules.yml: {loaded ^ expected}"
    bad = [(group, r["name"], r["health"], r.get("lastError")) for group, r in rules if r["health"] != "ok"]
    assert not bad, f"rules with health != ok: {bad}"
    print(f"  {len(rules)} rules in {len({g for g, _ in rules})} groups evaluated with health ok")


def check_recordings_and_no_alerts(stack):
    def slis():
        # Fresh traffic each poll: a rate needs an increase between two scrapes.
        status, _ = http("GET", stack.url("api-gateway", "/api/users"))
        assert status == 200, f"GET /api/users: {status}"
        per_job = {r["metric"]["job"] for r in stack.query("job:http_requests:rate5m")}
        ratio = stack.query('slo:sli_error:ratio_rate5m{slo="api-availability"}')
        if per_job != set(JOBS) or not ratio or ratio[0]["value"][1] == "NaN":
            return None  # NaN: no /api/ request between the last two scrapes yet
        return ratio
    ratio = wait_until("the SLI recording rules to produce data", slis, RULES_TIMEOUT)
    assert [r["value"][1] for r in ratio] == ["0"], f"no request failed, yet error ratio {ratio}"
    alerts = stack.prom("/api/v1/alerts")["alerts"]
    assert alerts == [], f"a healthy stack has pending or firing alerts: {alerts}"


def check_metric_names(stack):
    scrapes = {}
    for job in JOBS:
        status, text = http("GET", stack.url(job, "/metrics"))
        assert status == 200, f"{job} /metrics: {status}"
        scrapes[job] = metric_families(text)
    union = {}
    for families in scrapes.values():
        union.update(families)

    rules = load_rules()
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    queries = [(f"rule {r.get('record') or r.get('alert')}", r["expr"])
               for g in rules["groups"] for r in g["rules"]]
    queries += [(f"dashboard panel {title!r}", expr) for title, expr in dashboard_exprs(load_dashboard())]

    problems = []
    externals_used = set()
    checked = set()
    for where, expr in queries:
        for sel in selectors(expr):
            name = sel.name
            if name in recorded:
                continue
            if ":" in name:
                problems.append(f"{where}: {name} looks like a recording rule but no rule records it")
            elif name in EXTERNAL_METRICS:
                externals_used.add(name)
            else:
                job = sel.equal.get("job")
                families = scrapes.get(job, union)
                if not exported(name, families):
                    problems.append(f"{where}: {name} is not exported by {job or 'either service'}")
                checked.add(name)
    unused = set(EXTERNAL_METRICS) - externals_used
    assert not unused, f"EXTERNAL_METRICS lists metrics nothing queries (remove them): {sorted(unused)}"
    assert not problems, "metrics queried but not exported:\n  " + "\n  ".join(problems)
    print(f"  {len(checked)} exported metric names and {len(externals_used)} external ones checked "
          f"in {len(queries)} rule and dashboard queries")


def check_dashboard_queries(stack):
    failures = []
    for title, expr in dashboard_exprs(load_dashboard()):
        try:
            stack.query(grafana_to_promql(expr))
        except AssertionError as e:
            failures.append(f"{title}: {e}")
    assert not failures, "invalid dashboard queries:\n  " + "\n  ".join(failures)


def check_redis_alert(stack):
    rule = next(r for g in load_rules()["groups"] for r in g["rules"] if r.get("alert") == "RedisUnreachable")
    expr = rule["expr"]
    assert stack.query(expr) == [], f"{expr} is true before Redis is stopped"
    stack.kill("redis")
    result = wait_until(f"`{expr}` to become true after Redis was killed",
                        lambda: stack.query(expr), REDIS_ALERT_TIMEOUT)
    labels = result[0]["metric"]
    assert labels.get("job") == "user-service" and labels.get("dependency") == "redis", labels

    def pending():
        return [a for a in stack.prom("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == "RedisUnreachable" and a["state"] == "pending"]
    alert = wait_until("RedisUnreachable to be pending", pending, REDIS_ALERT_TIMEOUT)[0]
    assert alert["labels"]["severity"] == "page", alert
    status, _ = http("GET", stack.url("user-service", "/health/ready"))
    assert status == 503, f"user-service /health/ready is {status} without Redis"


CHECKS = [
    check_targets_up,
    check_rules_healthy,
    check_recordings_and_no_alerts,
    check_metric_names,
    check_dashboard_queries,
    check_redis_alert,  # last: it kills Redis
]


# ---- pytest entry points ---------------------------------------------------------------------

try:
    import pytest
except ImportError:  # standalone run
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="module")
    def stack():
        s = Stack()
        try:
            yield s.start()
        finally:
            s.stop()

    def test_targets_up(stack):
        check_targets_up(stack)

    def test_rules_healthy(stack):
        check_rules_healthy(stack)

    def test_recordings_and_no_alerts(stack):
        check_recordings_and_no_alerts(stack)

    def test_metric_names(stack):
        check_metric_names(stack)

    def test_dashboard_queries(stack):
        check_dashboard_queries(stack)

    def test_redis_alert(stack):
        check_redis_alert(stack)


# ---- standalone runner -----------------------------------------------------------------------

def main():
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    passed = failed = 0
    stack = Stack()
    try:
        stack.start()
        for check in CHECKS:
            started = time.monotonic()
            try:
                check(stack)
            except AssertionError as e:
                failed += 1
                print(f"FAIL {check.__name__}: {e}")
                continue
            passed += 1
            print(f"ok   {check.__name__} ({time.monotonic() - started:.1f}s)")
    except AssertionError as e:
        failed += 1
        print(f"FAIL start-up: {e}")
        for name in stack.procs:
            print(f"--- {name} log (tail) ---\n{stack.log_tail(name)}")
    finally:
        stack.stop()
    print(f"prometheus_test: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
