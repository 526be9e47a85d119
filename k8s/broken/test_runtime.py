"""Faults of k8s/broken/ shown on the REAL binary, with the configuration taken from the broken YAML.

Each test reads the container's environment, probes, ports and limits from the manifests (env,
envFrom ConfigMaps, configMapKeyRef), starts `users-platform` (and, where the fault involves it,
a redis-server configured from the broken redis-config ConfigMap and StatefulSet args) on
loopback, and asserts the failure docs/troubleshooting.md describes. Where a test needs a
Service of the set, its host name is translated to the 127.0.0.1 port of the process playing it;
a host name that is NOT a Service of the set is kept as it is, and name resolution is cut off
from the host's resolver (a private mount namespace with an empty resolv.conf), so nothing but
loopback is ever contacted. Listen ports are moved to free ports unless the port itself is the
point of the test. Each broken run is paired with a control run that applies the fix from the
guide, so the test proves the cause, not just a failure.

Binary: $USERS_PLATFORM_BIN, else ${CARGO_TARGET_DIR:-target}/debug/users-platform.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NAMESPACE = "users-platform-prod"


def _binary() -> Path:
    if os.environ.get("USERS_PLATFORM_BIN"):
        return Path(os.environ["USERS_PLATFORM_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "users-platform"


BIN = _binary()
pytestmark = pytest.mark.skipif(
    not os.access(BIN, os.X_OK),
    reason=f"the users-platform binary is not built at {BIN} (cargo build, or set USERS_PLATFORM_BIN)",
)


# ---------------------------------------------------------------------------------------------
# the broken manifests

def _load() -> list[dict]:
    docs = []
    for path in sorted(HERE.glob("*.yaml")):
        if path.name == "expected-findings.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


DOCS = _load()


def obj(kind: str, name: str) -> dict:
    for d in DOCS:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise KeyError(f"{kind}/{name} not in k8s/broken")


def container(workload: dict, name: str) -> dict:
    for c in workload["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def configmap(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (obj("ConfigMap", name).get("data") or {}).items()}


def manifest_env(workload: dict, cname: str) -> dict[str, str]:
    """The container's environment as the kubelet builds it from the manifest: envFrom first,
    then env (which wins). Secrets are not in git, so a secretKeyRef cannot be resolved here."""
    c = container(workload, cname)
    env: dict[str, str] = {}
    for src in c.get("envFrom") or []:
        if "configMapRef" in src:
            prefix = src.get("prefix", "")
            env.update({prefix + k: v for k, v in configmap(src["configMapRef"]["name"]).items()})
    for item in c.get("env") or []:
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
        elif "configMapKeyRef" in (item.get("valueFrom") or {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = configmap(ref["name"])[ref["key"]]
        else:
            raise NotImplementedError(f"cannot resolve env {item['name']} from git: {item}")
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    """$(VAR) expansion as the kubelet does it in env values, command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def service_link_env() -> dict[str, str]:
    """The variables the kubelet injects when enableServiceLinks is not false: one set per
    Service of the namespace that has a cluster IP (pkg/kubelet/envvars). The IPs are made up,
    as the manifests do not fix them; any address shows the effect."""
    env: dict[str, str] = {}
    services = [d for d in DOCS if d["kind"] == "Service" and d["metadata"].get("namespace") == NAMESPACE]
    for i, svc in enumerate(services, start=10):
        spec = svc["spec"]
        if spec.get("clusterIP") in ("None", ""):
            continue  # headless: no variables
        ip = f"10.43.{i}.{i * 7 % 250 + 1}"
        name = svc["metadata"]["name"].upper().replace("-", "_")
        ports = spec["ports"]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        env[f"{name}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            base = f"{name}_PORT_{p['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(p["port"])
            env[f"{base}_ADDR"] = ip
    return env


def http_get_path(probe: dict) -> str:
    return probe["httpGet"]["path"]


def parse_quantity(q: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "k": 1000, "M": 1000**2, "G": 1000**3}
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", str(q))
    assert m and (m.group(2) in units or not m.group(2)), f"unsupported quantity {q}"
    return int(m.group(1)) * units.get(m.group(2), 1)


# ---------------------------------------------------------------------------------------------
# processes on loopback

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return not listening(port)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post_json(port: int, path: str, body: dict, timeout: float = 5.0) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as e:  # not listening yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def metric_value(port: int, name: str, labels: str) -> float | None:
    _, text = get(port, "/metrics")
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None


_UNSHARE: bool | None = None


def can_isolate_dns() -> bool:
    """A private mount namespace, so the child's /etc/resolv.conf can point at nothing."""
    global _UNSHARE
    if _UNSHARE is None:
        _UNSHARE = bool(shutil.which("unshare")) and subprocess.run(
            ["unshare", "-m", "sh", "-c", "mount --bind /dev/null /etc/resolv.conf"],
            capture_output=True, timeout=10).returncode == 0
    return _UNSHARE


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str], logdir: Path, name: str, isolate_dns: bool = False):
        self.name = name
        self.out_path = logdir / f"{name}.out"
        self.err_path = logdir / f"{name}.err"
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")} | env
        if isolate_dns:
            resolv = logdir / "resolv.conf"
            # no nameserver that answers: names that are not Services of the set stay unresolved,
            # as they are in the cluster, and no query leaves this machine
            resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            argv = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                    str(resolv)] + argv
        self.out = self.out_path.open("wb")
        self.err = self.err_path.open("wb")
        self.p = subprocess.Popen(argv, env=full_env, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL)

    def stderr(self) -> str:
        self.err.flush()
        return self.err_path.read_text(errors="replace")

    def stdout(self) -> str:
        self.out.flush()
        return self.out_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            # users-platform exits at once on a second signal (no drain needed for a test)
            self.p.send_signal(signal.SIGTERM)
            for _ in range(2):
                try:
                    self.p.wait(timeout=0.3)
                    break
                except subprocess.TimeoutExpired:
                    self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        self.out.close()
        self.err.close()


@pytest.fixture
def procs(tmp_path):
    started: list[Proc] = []

    def start(argv, env, name, isolate_dns=False):
        p = Proc(argv, env, tmp_path, name, isolate_dns)
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        p.stop()


def start_service(procs, target: str, env: dict[str, str], name: str, isolate_dns: bool = False) -> tuple[Proc, int]:
    """Starts `users-platform <target>` with env; returns it and its port once /health/live answers."""
    port = int(env["PORT"])
    p = procs([str(BIN), target], env, name, isolate_dns)

    def up():
        if not p.alive():
            raise AssertionError(f"{name} exited with {p.p.returncode}: {p.stderr()[-2000:]}")
        return get(port, "/health/live", timeout=1)[0] == 200

    wait_until(up, 15, what=f"{name} /health/live")
    return p, port


# ---------------------------------------------------------------------------------------------
# Redis as the broken StatefulSet configures it

class Redis:
    def __init__(self, proc: Proc, port: int, password: str | None):
        self.proc, self.port, self.password = proc, port, password

    def command(self, *args: str) -> str:
        """One RESP command on a fresh connection, unauthenticated; returns the raw reply line."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(payload.encode())
            return s.recv(4096).decode(errors="replace").splitlines()[0]


@pytest.fixture
def broken_redis(procs, tmp_path):
    """redis-server with redis.conf from the broken redis-config ConfigMap and the StatefulSet's
    command/args, $(VAR)s expanded from its env (the password comes from that ConfigMap, as in
    the manifest). Only port, bind address and data dir are moved to loopback and tmp."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (scripts/deps/apt.txt lists it)")
    sts = obj("StatefulSet", "redis")
    c = container(sts, "redis")
    env = manifest_env(sts, "redis")
    port = free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    conf = tmp_path / "redis.conf"
    # the PVC mount (/data) becomes a tmp dir; redis checks `dir` while reading the file
    conf.write_text(re.sub(r"(?m)^dir .*$", f"dir {data}", configmap("redis-config")["redis.conf"]))
    argv = [_expand(a, env) for a in c["command"] + c["args"]]
    argv[1] = str(conf)  # the mounted /etc/redis/redis.conf
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--daemonize", "no"]
    proc = procs(argv, {}, "redis")
    wait_until(lambda: listening(port), 10, what="redis-server")
    password = argv[argv.index("--requirepass") + 1] if "--requirepass" in argv else None
    return Redis(proc, port, password)


def with_redis_host(env: dict[str, str], redis: Redis) -> dict[str, str]:
    """REDIS_URL pointed at the local stand-in of the Service `redis` (the fix of us-redis-host)."""
    url = env["REDIS_URL"]
    fixed = re.sub(r"^redis://([^@/]*@)?[^:/]+(:\d+)?", lambda m: f"redis://{m.group(1) or ''}127.0.0.1:{redis.port}", url)
    return env | {"REDIS_URL": fixed}


def with_password_file(env: dict[str, str], redis: Redis, tmp_path: Path) -> dict[str, str]:
    """REDIS_PASSWORD_FILE on a file holding the password (the fix of us-redis-password)."""
    secret = tmp_path / "redis-password"
    secret.write_text(redis.password + "\n")
    secret.chmod(0o440)
    return env | {"REDIS_PASSWORD_FILE": str(secret)}


def user_service_env() -> dict[str, str]:
    env = manifest_env(obj("Deployment", "user-service"), "user-service")
    return env | {"PORT": str(free_port())}


def ready_statuses(port: int, seconds: float) -> list[int]:
    """Polls /health/ready for `seconds` (several background-check rounds) and returns the codes."""
    codes = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        codes.append(get(port, "/health/ready")[0])
        time.sleep(0.5)
    return codes


# ---------------------------------------------------------------------------------------------
# user-service

def test_us_service_links_crash_the_user_service(procs, broken_redis, tmp_path):
    """enableServiceLinks is left at its default: the kubelet injects REDIS_PORT=tcp://<ip>:6379
    for the Service `redis`, which the binary reads as its own REDIS_PORT setting and refuses."""
    workload = obj("Deployment", "user-service")
    assert workload["spec"]["template"]["spec"].get("enableServiceLinks", True) is not False
    injected = service_link_env()
    assert injected["REDIS_PORT"].startswith("tcp://")
    # kubelet order: service variables first, the container's own env wins
    env = injected | user_service_env()
    # the process must exit before any lookup; isolate anyway where possible
    p = procs([str(BIN), "user-service"], env, "user-service-links", isolate_dns=can_isolate_dns())
    rc = p.p.wait(timeout=15)
    err = p.stderr()
    assert rc == 2, f"expected a configuration error (exit 2), got {rc}: {err}"
    assert "REDIS_PORT" in err and injected["REDIS_PORT"] in err, err
    assert len(err.strip().splitlines()) == 1, "one line naming the variable"

    # control: enableServiceLinks: false (the fix), same manifest env, Redis reachable -> it runs
    fixed = with_password_file(with_redis_host(user_service_env(), broken_redis), broken_redis, tmp_path)
    start_service(procs, "user-service", fixed, "user-service-nolinks")


def test_us_redis_host_keeps_readiness_503(procs, broken_redis, tmp_path):
    """REDIS_URL names redis.users-platform.svc.cluster.local, a namespace that does not exist in
    this cluster: the process lives, readiness never turns 200."""
    if not can_isolate_dns():
        pytest.skip("needs `unshare -m` (root) to keep the unknown host name away from the real resolver")
    env = user_service_env()
    host = re.match(r"redis://(?:[^@/]*@)?([^:/]+)", env["REDIS_URL"]).group(1)
    service_names = {d["metadata"]["name"] for d in DOCS if d["kind"] == "Service"}
    assert host.split(".")[0] in service_names and host.split(".")[1] != NAMESPACE, host
    # every other Redis fault fixed (password given), the host kept as it is
    env = with_password_file(env, broken_redis, tmp_path)
    _, port = start_service(procs, "user-service", env, "user-service-wrong-host", isolate_dns=True)
    codes = ready_statuses(port, 6)
    assert set(codes) == {503}, codes
    assert get(port, "/health/live")[0] == 200, "liveness must not care"
    status, body = get(port, "/health/ready")
    assert status == 503 and "redis" in body, body
    assert metric_value(port, "dependency_up", 'dependency="redis"') == 0

    # control: the host fixed -> ready
    _, port2 = start_service(procs, "user-service", with_redis_host(env | {"PORT": str(free_port())}, broken_redis),
                             "user-service-fixed-host")
    wait_until(lambda: get(port2, "/health/ready")[0] == 200, 10, what="readiness after the fix")


def test_us_redis_password_never_reaches_the_client(procs, broken_redis, tmp_path):
    """Redis runs with --requirepass (from the ConfigMap); the user-service gets no password."""
    assert broken_redis.password, "the broken StatefulSet sets --requirepass"
    assert broken_redis.command("PING").startswith("-NOAUTH"), "an unauthenticated client is refused"
    env = user_service_env()
    assert not {"REDIS_PASSWORD", "REDIS_PASSWORD_FILE"} & env.keys()
    # the host fixed (us-redis-host, redis-service-selector), the password left as the manifest has it
    env = with_redis_host(env, broken_redis)
    _, port = start_service(procs, "user-service", env, "user-service-no-password")
    codes = ready_statuses(port, 6)
    assert set(codes) == {503}, codes
    assert get(port, "/health/live")[0] == 200
    assert metric_value(port, "dependency_up", 'dependency="redis"') == 0

    # control: REDIS_PASSWORD_FILE on the mounted secret (the fix) -> ready
    fixed = with_password_file(env | {"PORT": str(free_port())}, broken_redis, tmp_path)
    _, port2 = start_service(procs, "user-service", fixed, "user-service-password")
    wait_until(lambda: get(port2, "/health/ready")[0] == 200, 10, what="readiness with the password")


def test_us_liveness_path_fails_when_redis_is_away(procs, broken_redis, tmp_path):
    """livenessProbe uses /health/ready: when Redis goes away (it restarts every minute, see
    redis-liveness-port) the probe fails and the kubelet restarts healthy user-service pods."""
    c = container(obj("Deployment", "user-service"), "user-service")
    live_path = http_get_path(c["livenessProbe"])
    assert live_path == http_get_path(c["readinessProbe"])
    env = with_password_file(with_redis_host(user_service_env(), broken_redis), broken_redis, tmp_path)
    _, port = start_service(procs, "user-service", env, "user-service-liveness")
    wait_until(lambda: get(port, live_path)[0] == 200, 10, what="probe path 200 while Redis is up")
    broken_redis.proc.stop()
    wait_until(lambda: get(port, live_path)[0] == 503, 10, what="probe path 503 once Redis is gone")
    threshold = c["livenessProbe"].get("failureThreshold", 3)
    period = c["livenessProbe"].get("periodSeconds", 10)
    codes = [get(port, live_path)[0] for _ in range(threshold)]
    assert codes == [503] * threshold, f"{threshold} failed probes in a row = restart within {threshold * period}s"
    # what the fixed probe would see: the process is fine
    assert get(port, "/health/live")[0] == 200


def _cgroup_v1_memory() -> Path | None:
    root = Path("/sys/fs/cgroup/memory")
    if (root / "memory.limit_in_bytes").exists() and os.access(root, os.W_OK):
        return root
    return None


def _seed(port: int, users: int):
    """Creates `users` users through the API (what a normal day leaves in the store)."""
    def create(i: int):
        post_json(port, "/users", {"name": f"Load User {i}", "email": f"load-{i}-{time.time_ns()}@example.com"})
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(users)))


def _list_storm(port: int, seconds: float, clients: int = 256) -> dict:
    """A burst of the project's own listing requests (GET /users, default page) from many
    clients at once, the shape of a Monday-morning peak through several gateway pods."""
    outcomes: dict = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(_: int):
        while time.monotonic() < stop:
            try:
                code = get(port, "/users?limit=100", timeout=5)[0]
            except OSError as e:
                code = type(e).__name__
            with lock:
                outcomes[code] = outcomes.get(code, 0) + 1
            if not isinstance(code, int):
                time.sleep(0.05)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return outcomes


def _rss_anon(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) * 1024


def test_us_memory_limit_below_working_set(procs, broken_redis, tmp_path):
    """limits.memory was sized from the idle RSS on a dashboard; the process fits at idle, but under
    a burst of the project's own requests its working set goes past the limit and the kernel
    OOM-kills it (in Kubernetes: Last State Terminated, Reason OOMKilled, Exit Code 137)."""
    c = container(obj("Deployment", "user-service"), "user-service")
    limit = parse_quantity(c["resources"]["limits"]["memory"])
    env = with_password_file(with_redis_host(user_service_env(), broken_redis), broken_redis, tmp_path)
    port = int(env["PORT"])
    v1 = _cgroup_v1_memory()
    if v1 is None:
        # no cgroup to enforce the limit: sample the anonymous RSS (what an OOM kill is about) under the same load
        p, port = start_service(procs, "user-service", env, "user-service-rss")
        wait_until(lambda: get(port, "/health/ready")[0] == 200, 10, what="ready")
        idle = _rss_anon(p.p.pid)
        _seed(port, 1000)
        peak = 0
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                with contextlib.suppress(OSError, AttributeError):
                    peak = max(peak, _rss_anon(p.p.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            _list_storm(port, 5)
        finally:
            done.set()
            sampler.join()
        assert idle < limit, f"the process must fit at idle ({idle} B) for the story to hold"
        assert peak > limit, f"peak anonymous RSS {peak} B under load stays below the broken limit {limit} B"
        return

    cg = v1 / f"users-platform-broken-{os.getpid()}-{int(time.time() * 1000)}"
    cg.mkdir()
    try:
        (cg / "memory.limit_in_bytes").write_text(str(limit))
        with contextlib.suppress(OSError):  # no swap accounting on some kernels
            (cg / "memory.memsw.limit_in_bytes").write_text(str(limit))
        argv = ["sh", "-c", f'echo $$ > "{cg}/cgroup.procs" && exec "$0" user-service', str(BIN)]
        p = procs(argv, env, "user-service-limited")
        wait_until(lambda: get(port, "/health/ready", timeout=1)[0] == 200, 15, what="ready under the limit")
        _seed(port, 1000)
        assert p.alive(), "it fits at idle and under light traffic: the limit looked fine on the dashboard"
        idle_usage = int((cg / "memory.usage_in_bytes").read_text())
        outcomes = _list_storm(port, 6)
        rc = p.p.wait(timeout=10)
        oom = re.search(r"oom_kill (\d+)", (cg / "memory.oom_control").read_text())
        assert rc == -signal.SIGKILL, (
            f"expected the kernel to kill the process at the {limit} B limit; rc={rc}, "
            f"failcnt={(cg / 'memory.failcnt').read_text().strip()}, usage before the burst {idle_usage} B, "
            f"outcomes {outcomes}")
        if oom:  # older kernels do not count
            assert int(oom.group(1)) >= 1
        assert outcomes.get("ConnectionRefusedError", 0) + outcomes.get("ConnectionResetError", 0) \
            + outcomes.get("RemoteDisconnected", 0) + outcomes.get("URLError", 0) > 0, outcomes
    finally:
        with contextlib.suppress(OSError):
            for pid in (cg / "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.2)
            cg.rmdir()


# ---------------------------------------------------------------------------------------------
# api-gateway

def gateway_env(user_service_port: int) -> dict[str, str]:
    env = manifest_env(obj("Deployment", "api-gateway"), "api-gateway")
    # user-service is a Service of the set: translate it to the local stand-in
    url = env["USER_SERVICE_URL"]
    assert re.match(r"http://user-service(:\d+)?$", url), url
    return env | {"USER_SERVICE_URL": f"http://127.0.0.1:{user_service_port}"}


def test_gw_readiness_path_is_404(procs):
    """readinessProbe asks /healthz, which this binary does not serve: 404 forever, so the pod
    never becomes Ready although the gateway and its upstream are fine."""
    _, us_port = start_service(procs, "user-service", {"PORT": str(free_port())}, "user-service-memory")
    env = gateway_env(us_port) | {"PORT": str(free_port())}
    _, port = start_service(procs, "api-gateway", env, "api-gateway")
    probe = container(obj("Deployment", "api-gateway"), "api-gateway")["readinessProbe"]
    status, body = get(port, http_get_path(probe))
    assert status == 404, (status, body)
    assert "error" in json.loads(body)
    wait_until(lambda: get(port, "/health/ready")[0] == 200, 10, what="the real readiness path 200")


def test_gw_container_port_has_no_listener(procs):
    """containerPort (8080) is not the port the gateway listens on (PORT=3000): probes, the
    Service and the NetworkPolicies all point at a port where nothing listens."""
    c = container(obj("Deployment", "api-gateway"), "api-gateway")
    declared = next(p["containerPort"] for p in c["ports"] if p.get("name") == "http")
    env = manifest_env(obj("Deployment", "api-gateway"), "api-gateway")
    assert int(env["PORT"]) != declared
    if not port_is_free(declared):
        pytest.skip(f"port {declared} is in use on this machine; cannot show that the gateway leaves it empty")
    if not port_is_free(int(env["PORT"])):
        env["PORT"] = str(free_port())  # keep the point: PORT != containerPort
    _, us_port = start_service(procs, "user-service", {"PORT": str(free_port())}, "user-service-memory")
    env["USER_SERVICE_URL"] = f"http://127.0.0.1:{us_port}"
    _, port = start_service(procs, "api-gateway", env, "api-gateway")
    assert get(port, "/health/live")[0] == 200
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex(("127.0.0.1", declared)) != 0, f"nothing must listen on containerPort {declared}"
