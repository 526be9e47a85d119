#!/usr/bin/env python3
"""End-to-end test of a deployed users-platform (issue 19). Run it through scripts/e2e.

    scripts/e2e [--context CTX] [--namespace NS] [--base-url URL [--host HOST]] [--skip STEP,...]
                [--load-seconds N] [--concurrency N] [--artifacts DIR] [--record DIR] [--local-images]
    scripts/e2e --from-recording DIR [--local-images]   # evaluate a recording: no cluster, no network

Every step first *observes* (kubectl and HTTP calls; the only I/O) and then *evaluates* what it
observed with pure functions. The observations of a step are a few files (kubectl's own JSON/YAML,
metrics pages, the HTTP exchanges as JSON): --record DIR writes them, --from-recording DIR reads
them back and runs only the evaluation. The unit tests (scripts/e2e_test.py) use that, on the
recordings in scripts/e2e-fixtures/.

Steps, in order (each prints one PASS/FAIL line with its figures; exit status 1 if any failed):
  pods      every pod Running and Ready, no container waiting or restarted, all three apps present
  objects   the live objects (kubectl get -o yaml), cleaned of server-populated fields, pass the
            policy engine (k8s/policy/policy.py) and kubernetes-validate --strict; with
            --local-images (images loaded into the nodes by `kind load`, as deploy-dev does)
            the findings of the rule image-no-digest are ignored
  crud      CRUD, pagination, JSON errors and X-Request-ID through the entry point
  metrics   /metrics of both services has the key series
  restart   kubectl rollout restart of the user-service under load: 0 failed requests
  redis     kubectl delete pod of Redis: a quick 503, recovery, users kept, no service restart

Needs Python 3 with PyYAML, kubectl (live runs) and kubernetes-validate (objects step).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "k8s" / "policy" / "policy.py"

STEPS = ("pods", "objects", "crud", "metrics", "restart", "redis")
APPS = ("api-gateway", "user-service", "redis")
SERVICES = ("api-gateway", "user-service")  # the two that must never restart
APP_LABEL = "app.kubernetes.io/name"
DEFAULT_NAMESPACE = "users-platform-dev"  # k8s/rendered/dev.yaml
K8S_VERSION = "1.31.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ExternalSecret"}  # as scripts/check-k8s
LIVE_KINDS = "deploy,sts,svc,cm,sa,networkpolicy,pdb,hpa,ingress,role,rolebinding"
BAD_WAITING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
    "CreateContainerError", "InvalidImageName", "RunContainerError",
}

# Bounds. The option bounds keep the load short and small whatever is passed.
LOAD_SECONDS = (1, 60)
CONCURRENCY = (1, 16)
REQUEST_TIMEOUT = 5.0          # one HTTP request
FIRST_503_WITHIN = 10.0        # Redis deleted -> first 503 seen
QUICK_ANSWER = 3.0             # every answer during the Redis outage arrives within this
RECOVERY_WITHIN = 120.0        # Redis deleted -> the API answers 200 again
ROLLOUT_TIMEOUT = 180          # kubectl rollout status of the restart
PROBE_INTERVAL = 0.25
PAGE_LIMIT = 50
MAX_PAGES = 100

# Series each service must export (docs/monitoring.md, monitoring/rules.yml): name, labels that
# must be on at least one sample, and the value that sample must have (None: any).
REQUIRED_SERIES: dict[str, list[tuple[str, dict[str, str], float | None]]] = {
    "api-gateway": [
        ("http_requests_total", {"route": "/api/users"}, None),
        ("http_request_duration_seconds_bucket", {}, None),
        ("http_requests_in_flight", {}, None),
        ("http_requests_shed_total", {}, None),
        ("upstream_request_duration_seconds_bucket", {}, None),
        ("dependency_up", {"dependency": "user-service"}, 1.0),
        ("build_info", {}, 1.0),
        ("process_resident_memory_bytes", {}, None),
    ],
    "user-service": [
        ("http_requests_total", {"route": "/users"}, None),
        ("http_request_duration_seconds_bucket", {}, None),
        ("http_requests_in_flight", {}, None),
        ("http_requests_shed_total", {}, None),
        ("redis_command_duration_seconds_bucket", {}, None),
        ("dependency_up", {"dependency": "redis"}, 1.0),
        ("users_total", {}, None),
        ("build_info", {}, 1.0),
        ("process_resident_memory_bytes", {}, None),
    ],
}
SERVICE_PORTS = {"api-gateway": 3000, "user-service": 3001}  # Service port "http" of each


# ---------------------------------------------------------------------------------------------
# Arguments


def bounded(lo: float, hi: float, kind: Callable[[str], Any] = int) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value
    return parse


def step_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown step {', '.join(unknown)} (steps: {', '.join(STEPS)})")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/e2e",
        description="End-to-end test of a deployed users-platform (see README, End-to-end test).",
    )
    p.add_argument("--context", help="kubectl context (default: kubectl's current context)")
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=f"namespace (default {DEFAULT_NAMESPACE})")
    p.add_argument("--base-url", help="the entry point, e.g. the Ingress URL http://HOST; default: a "
                   "kubectl port-forward to svc/api-gateway on 127.0.0.1, opened and closed here")
    p.add_argument("--host", help="Host header to send to --base-url (an Ingress host rule reached by IP)")
    p.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate of --base-url")
    p.add_argument("--load-seconds", type=bounded(*LOAD_SECONDS), default=5,
                   help=f"minimum load duration around the restart ({LOAD_SECONDS[0]}-{LOAD_SECONDS[1]}, default 5)")
    p.add_argument("--concurrency", type=bounded(*CONCURRENCY), default=4,
                   help=f"load workers ({CONCURRENCY[0]}-{CONCURRENCY[1]}, default 4)")
    p.add_argument("--skip", type=step_list, action="append", default=[], metavar="STEP[,STEP]",
                   help=f"steps not to run ({', '.join(STEPS)}); repeatable")
    p.add_argument("--artifacts", metavar="DIR", help="on failure: describe, events, every pod's logs "
                   "and the recording are written into DIR")
    p.add_argument("--record", metavar="DIR", help="write every observation into DIR (a recording)")
    p.add_argument("--from-recording", metavar="DIR", help="evaluate the recording in DIR instead of "
                   "calling kubectl and the API")
    p.add_argument("--local-images", action="store_true", help="the images were loaded into the nodes "
                   "without a registry (kind load, as deploy-dev does), so the policy engine's "
                   "image-no-digest rule does not apply: a digest only pins what a registry serves")
    args = p.parse_args(argv)
    args.skip = sorted({s for group in args.skip for s in group}, key=STEPS.index)
    if args.host and not args.base_url:
        p.error("--host needs --base-url")
    if args.from_recording and (args.base_url or args.context or args.record):
        p.error("--from-recording takes no --base-url, --context or --record")
    if args.base_url and urlsplit(args.base_url).scheme not in ("http", "https"):
        p.error(f"--base-url must be http:// or https://, not {args.base_url!r}")
    return args


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    step: str
    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{'PASS' if self.ok else 'FAIL'} {self.step}: {self.summary}"
        return [head] + [f"    - {p}" for p in self.problems]


def result(step: str, summary: str, problems: list[str]) -> Result:
    return Result(step, not problems, summary, problems)


# ---------------------------------------------------------------------------------------------
# Evaluation: pods (kubectl get pods -o json)


def app_of(pod: dict) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(APP_LABEL, "")


def pod_problems(pod: dict) -> list[str]:
    """What is wrong with one pod; [] when it is Running, Ready and never restarted."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    problems = []
    if pod["metadata"].get("deletionTimestamp"):
        problems.append(f"{name} is terminating")
    phase = status.get("phase")
    if phase != "Running":
        problems.append(f"{name} is {phase}")
    ready = {c.get("type"): c.get("status") for c in status.get("conditions") or []}.get("Ready")
    if ready != "True":
        problems.append(f"{name} is not Ready")
    for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = c.get("state") or {}
        waiting = state.get("waiting")
        if waiting:
            reason = waiting.get("reason", "?")
            bad = "" if reason not in BAD_WAITING else " (broken)"
            message = f": {waiting['message']}" if waiting.get("message") else ""
            problems.append(f"{name}/{c['name']} is waiting: {reason}{bad}{message}")
        restarts = c.get("restartCount", 0)
        if restarts:
            last = ((c.get("lastState") or {}).get("terminated") or {})
            why = f" (last: {last.get('reason')}, exit {last.get('exitCode')})" if last else ""
            problems.append(f"{name}/{c['name']} restarted {restarts} times{why}")
    return problems


def evaluate_pods(pods: dict, apps: tuple[str, ...] = APPS) -> tuple[list[str], str]:
    """(problems, summary) for every pod of the list; every app must have a pod."""
    items = pods.get("items") or []
    problems = []
    for app in apps:
        if not any(app_of(p) == app for p in items):
            problems.append(f"no pod of {app}")
    for pod in items:
        problems += pod_problems(pod)
    ready = sum(1 for p in items if not pod_problems(p))
    counts = ", ".join(f"{a} {sum(1 for p in items if app_of(p) == a)}" for a in apps)
    return problems, f"{ready}/{len(items)} pods ready, none restarted ({counts})" if not problems \
        else f"{ready}/{len(items)} pods healthy ({counts})"


def restart_counts(pods: dict, apps: tuple[str, ...] = SERVICES) -> dict[str, dict]:
    """{pod name: {"uid", "restarts": total restartCount}} of the pods of these apps."""
    out = {}
    for pod in pods.get("items") or []:
        if app_of(pod) in apps:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            out[pod["metadata"]["name"]] = {
                "uid": pod["metadata"].get("uid"),
                "restarts": sum(c.get("restartCount", 0) for c in statuses),
            }
    return out


def compare_restarts(before: dict, after: dict) -> list[str]:
    """The service pods must be the same pods, with the same restart counts."""
    problems = []
    for name, b in sorted(before.items()):
        a = after.get(name)
        if a is None:
            problems.append(f"{name} is gone (replaced)")
        elif a["uid"] != b["uid"]:
            problems.append(f"{name} was recreated")
        elif a["restarts"] != b["restarts"]:
            problems.append(f"{name} restarted: restartCount {b['restarts']} -> {a['restarts']}")
    for name in sorted(set(after) - set(before)):
        problems.append(f"{name} is a new pod")
    return problems


def format_restarts(counts: dict) -> str:
    return ", ".join(f"{n}={c['restarts']}" for n, c in sorted(counts.items())) or "none"


def evaluate_pods_step(pods: dict) -> Result:
    problems, summary = evaluate_pods(pods)
    return result("pods", summary, problems)


# ---------------------------------------------------------------------------------------------
# Evaluation: live objects (kubectl get -o yaml)

SERVER_METADATA = ("managedFields", "uid", "resourceVersion", "generation", "creationTimestamp",
                   "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")
# A digest only pins what a registry serves: images loaded into the nodes without a registry
# (kind load, as deploy-dev does) are applied by tag, so --local-images ignores this rule.
LOCAL_IMAGE_RULES = ("image-no-digest",)
# Created by Kubernetes itself in every namespace, not by us.
AUTOMATIC = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}


def clean_object(obj: dict) -> dict:
    """A live object without what the server populates (a copy)."""
    obj = json.loads(json.dumps(obj))
    obj.pop("status", None)
    meta = obj.get("metadata") or {}
    for key in SERVER_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        meta.pop("annotations", None)
    template = (obj.get("spec") or {}).get("template") or {}
    if (template.get("metadata") or {}).get("creationTimestamp", 0) is None:
        del template["metadata"]["creationTimestamp"]
    for claim in (obj.get("spec") or {}).get("volumeClaimTemplates") or []:
        claim.pop("status", None)
        (claim.get("metadata") or {}).pop("creationTimestamp", None)
    return obj


def clean_objects(docs: list[dict]) -> list[dict]:
    """Flatten kubectl Lists, drop objects Kubernetes creates by itself, clean every object, and
    drop spec.replicas of HPA-scaled workloads: the server fills it in (the HPA owns it), so it is
    not a hand-set replica count the policy engine's hpa-fixed-replicas rule is about."""
    items = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        is_list = str(doc.get("kind", "")).endswith("List")
        for item in (doc.get("items") or []) if is_list else [doc]:
            if (item.get("kind"), (item.get("metadata") or {}).get("name")) not in AUTOMATIC:
                items.append(clean_object(item))
    scaled = {
        ((h.get("metadata") or {}).get("namespace"), h["spec"]["scaleTargetRef"].get("kind"), h["spec"]["scaleTargetRef"].get("name"))
        for h in items if h.get("kind") == "HorizontalPodAutoscaler" and (h.get("spec") or {}).get("scaleTargetRef")
    }
    for item in items:
        key = ((item.get("metadata") or {}).get("namespace"), item.get("kind"), (item.get("metadata") or {}).get("name"))
        if key in scaled:
            (item.get("spec") or {}).pop("replicas", None)
    return items


def run_policy(objects: list[dict], workdir: Path) -> list[str]:
    """Findings of k8s/policy/policy.py on the objects (one line each)."""
    path = workdir / "live.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=True), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(POLICY), str(path)], capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        return [f"policy engine failed (exit {proc.returncode}): {proc.stderr.strip()}"]
    return [line.replace(f" {path} ", " ") for line in proc.stdout.splitlines() if line.strip()]


def run_schema(objects: list[dict], workdir: Path) -> tuple[list[str], int]:
    """kubernetes-validate --strict on the non-CRD objects: (problems, objects validated)."""
    beside = Path(sys.executable).parent / "kubernetes-validate"  # the venv of this python
    tool = shutil.which("kubernetes-validate") or (str(beside) if beside.is_file() else None)
    if tool is None:
        return ["kubernetes-validate is not installed (scripts/install-deps puts it in .venv)"], 0
    out = workdir / "schema"
    out.mkdir()
    files = []
    for n, obj in enumerate(o for o in objects if o.get("kind") not in CRD_KINDS):
        path = out / f"{n:03d}-{obj['kind']}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=True), encoding="utf-8")
        files.append(str(path))
    if not files:
        return ["no objects to validate"], 0
    proc = subprocess.run([tool, "--strict", "-k", K8S_VERSION, "--quiet", *files],
                          capture_output=True, text=True, check=False)
    lines = [line.replace(f"{out}/", "") for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode != 0 and not lines:
        lines = [f"kubernetes-validate exited {proc.returncode}"]
    return lines, len(files)


def evaluate_objects(docs: list[dict], local_images: bool = False) -> Result:
    """The live objects against the policy engine and the schemas. local_images: the images were
    loaded into the nodes without a registry, so findings of LOCAL_IMAGE_RULES do not count."""
    objects = clean_objects(docs)
    kinds = sorted({o.get("kind", "?") for o in objects})
    problems = []
    if not any(o.get("kind") == "Namespace" for o in objects):
        problems.append("the Namespace object is missing (namespace-pod-security cannot be checked)")
    for app in APPS:
        if not any(o.get("kind") in ("Deployment", "StatefulSet") and o["metadata"]["name"] == app for o in objects):
            problems.append(f"no Deployment/StatefulSet {app}")
    with tempfile.TemporaryDirectory(prefix="e2e-objects-") as tmp:
        findings = run_policy(objects, Path(tmp))
        schema, validated = run_schema(objects, Path(tmp))
    ignored = [f for f in findings if local_images and f.split(" ", 1)[0] in LOCAL_IMAGE_RULES]
    findings = [f for f in findings if f not in ignored]
    problems += [f"policy: {f}" for f in findings] + [f"schema: {s}" for s in schema]
    note = (f" ({len(ignored)} {'/'.join(LOCAL_IMAGE_RULES)} ignored: --local-images, images loaded "
            "without a registry)" if local_images else "")
    summary = (f"{len(objects)} live objects ({', '.join(kinds)}): {len(findings)} policy findings{note}, "
               f"{validated} validated against Kubernetes {K8S_VERSION} with {len(schema)} errors")
    return result("objects", summary, problems)


# ---------------------------------------------------------------------------------------------
# Evaluation: HTTP exchanges
#
# An exchange is a dict: name, method, path, request_id (sent), status (None when the request
# failed), headers (lower-case names), body (text), elapsed (s), error (transport error or None).


def body_json(ex: dict) -> Any:
    try:
        return json.loads(ex.get("body") or "")
    except ValueError:
        return None


def exchange_problems(ex: dict) -> list[str]:
    """The contract every response keeps: an answer, X-Request-ID (ours echoed), JSON errors."""
    what = f"{ex['name']} ({ex['method']} {ex['path']})"
    if ex.get("status") is None:
        return [f"{what}: no answer: {ex.get('error')}"]
    problems = []
    headers = ex.get("headers") or {}
    rid = headers.get("x-request-id")
    if not rid:
        problems.append(f"{what}: no X-Request-ID header")
    elif ex.get("request_id") and rid != ex["request_id"]:
        problems.append(f"{what}: X-Request-ID {rid!r} is not the one sent ({ex['request_id']!r})")
    if ex["status"] >= 400:
        body = body_json(ex)
        if not headers.get("content-type", "").startswith("application/json"):
            problems.append(f"{what}: {ex['status']} with content-type {headers.get('content-type')!r}")
        if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]):
            problems.append(f"{what}: {ex['status']} body is not {{\"error\": ...}}: {str(ex.get('body'))[:120]!r}")
    return problems


# name -> expected status of the CRUD scenario (crud_scenario below makes these requests)
CRUD_EXPECT = {
    "create-1": 201, "create-2": 201, "create-3": 201, "get-1": 200, "page-small": 200,
    "patch-1": 200, "duplicate-email": 409, "invalid": 422, "unsupported-media": 415,
    "bad-limit": 400, "unknown-route": 404, "method-not-allowed": 405, "delete-3": 204,
    "get-deleted": 404, "get-unknown": 404, "generated-request-id": 200,
}
USER_KEYS = {"id", "name", "email", "role", "createdAt", "updatedAt"}


def evaluate_crud(exchanges: list[dict]) -> Result:
    by_name = {ex["name"]: ex for ex in exchanges}
    problems = []
    for ex in exchanges:
        problems += exchange_problems(ex)
    for name, status in CRUD_EXPECT.items():
        ex = by_name.get(name)
        if ex is None:
            problems.append(f"{name}: not made")
        elif ex.get("status") is not None and ex["status"] != status:
            problems.append(f"{name} ({ex['method']} {ex['path']}): {ex['status']}, expected {status}: {str(ex.get('body'))[:120]}")
    created = []
    for n in (1, 2, 3):
        ex = by_name.get(f"create-{n}")
        user = body_json(ex) if ex and ex.get("status") == 201 else None
        if not isinstance(user, dict):
            continue
        created.append(user)
        if not USER_KEYS <= set(user):
            problems.append(f"create-{n}: the user lacks {sorted(USER_KEYS - set(user))}")
        location = (ex.get("headers") or {}).get("location", "")
        if not location.endswith(f"/api/users/{user.get('id')}"):
            problems.append(f"create-{n}: Location {location!r} is not /api/users/{user.get('id')}")
        if user.get("role") != "user":
            problems.append(f"create-{n}: role {user.get('role')!r}, the default is 'user'")
    got = by_name.get("get-1")
    if created and got and got.get("status") == 200 and body_json(got) != created[0]:
        problems.append("get-1: the user read back differs from the one created")
    patched = body_json(by_name["patch-1"]) if by_name.get("patch-1", {}).get("status") == 200 else None
    if created and isinstance(patched, dict):
        if patched.get("name") != "E2E Renamed" or patched.get("email") != created[0].get("email"):
            problems.append(f"patch-1: name/email after PATCH are {patched.get('name')!r}/{patched.get('email')!r}")
    invalid = body_json(by_name["invalid"]) if "invalid" in by_name else None
    if isinstance(invalid, dict) and not {"email", "name"} <= set(invalid.get("details") or {}):
        problems.append(f"invalid: 422 details should name email and name: {invalid.get('details')}")
    small = body_json(by_name["page-small"]) if "page-small" in by_name else None
    if isinstance(small, dict):
        if len(small.get("data") or []) > 2:
            problems.append(f"page-small: limit=2 returned {len(small['data'])} users")
        if (small.get("total") or 0) > 2 and not small.get("next_cursor"):
            problems.append("page-small: total > 2 but no next_cursor")
    pages = [ex for ex in exchanges if ex["name"].startswith("page-walk-")]
    walked, page_problems = evaluate_pages(pages, [u.get("id") for u in created[:2]])
    problems += page_problems
    summary = (f"{len(exchanges)} requests, {len(CRUD_EXPECT)} expectations, {walked} users paged "
               f"in {len(pages)} pages of <= {PAGE_LIMIT}")
    return result("crud", summary, problems)


def evaluate_pages(pages: list[dict], expected_ids: list[str]) -> tuple[int, list[str]]:
    """A walk over every page following next_cursor: no duplicates, the count matches total,
    the walk ends, and the given ids (still existing, oldest first) are there in that order."""
    if not pages:
        return 0, ["page-walk: no pages"]
    problems = []
    ids: list[str] = []
    total = None
    for n, ex in enumerate(pages):
        body = body_json(ex)
        if ex.get("status") != 200 or not isinstance(body, dict):
            return len(ids), [f"{ex['name']}: status {ex.get('status')}"]
        data = body.get("data") or []
        if len(data) > PAGE_LIMIT:
            problems.append(f"{ex['name']}: {len(data)} users for limit={PAGE_LIMIT}")
        ids += [u.get("id") for u in data]
        total = body.get("total") if total is None else total
        last = n == len(pages) - 1
        if not last and not body.get("next_cursor"):
            problems.append(f"{ex['name']}: no next_cursor but the walk went on")
        if last and body.get("next_cursor"):
            problems.append(f"page-walk: stopped after {len(pages)} pages with a next_cursor left")
    if len(set(ids)) != len(ids):
        problems.append(f"page-walk: {len(ids) - len(set(ids))} users appear twice")
    if total is not None and len(ids) != total:
        problems.append(f"page-walk: {len(ids)} users paged, total says {total}")
    positions = [ids.index(i) if i in ids else None for i in expected_ids]
    if None in positions:
        problems.append(f"page-walk: created users missing from the pages: {[i for i, p in zip(expected_ids, positions) if p is None]}")
    elif positions != sorted(positions):
        problems.append("page-walk: created users are not oldest first")
    return len(ids), problems


# ---------------------------------------------------------------------------------------------
# Evaluation: metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), value))
    return samples


def missing_series(service: str, text: str) -> list[str]:
    samples = parse_metrics(text)
    problems = []
    for name, labels, value in REQUIRED_SERIES[service]:
        matching = [s for s in samples if s[0] == name and labels.items() <= s[1].items()]
        shown = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        if not matching:
            problems.append(f"{service}: no {shown}")
        elif value is not None and not any(s[2] == value for s in matching):
            problems.append(f"{service}: {shown} is {matching[0][2]:g}, expected {value:g}")
    return problems


def evaluate_metrics(pages: dict[str, str | None]) -> Result:
    problems = []
    figures = []
    for service in SERVICES:
        text = pages.get(service)
        if text is None:
            problems.append(f"{service}: /metrics not scraped")
            continue
        problems += missing_series(service, text)
        figures.append(f"{service} {len(parse_metrics(text))} samples")
    required = sum(len(v) for v in REQUIRED_SERIES.values())
    return result("metrics", f"{', '.join(figures) or 'nothing scraped'}; {required} key series required", problems)


# ---------------------------------------------------------------------------------------------
# Evaluation: rollout restart under load


def evaluate_restart(obs: dict, before: dict, after: dict) -> Result:
    load = obs["load"]
    rollout = obs["rollout"]
    problems = []
    if not rollout.get("ok"):
        problems.append(f"rollout did not finish: {rollout.get('output', '').strip()[:300]}")
    if load["requests"] == 0:
        problems.append("no request was sent")
    if load["failed"]:
        problems.append(f"{load['failed']} of {load['requests']} requests failed")
        problems += [f"  t={f['t']:.2f}s {f['method']} {f['path']}: {f.get('status') or f.get('error')}"
                     for f in load.get("failures", [])[:10]]
    old = set(restart_counts(before, ("user-service",)))
    new = set(restart_counts(after, ("user-service",)))
    if not old:
        problems.append("no user-service pod before the restart")
    if old & new:
        problems.append(f"not restarted: {', '.join(sorted(old & new))} still there")
    pod_problems_after, _ = evaluate_pods(after, ("user-service",))
    problems += [f"after: {p}" for p in pod_problems_after if "user-service" in p]
    if obs.get("old_pods_gone") is None:
        problems.append("the old user-service pods were still there at the end of the load")
    elif load["seconds"] + 0.01 < obs["old_pods_gone"]:
        problems.append(f"the load stopped at {load['seconds']:.1f}s, before the old pods were gone "
                        f"({obs['old_pods_gone']:.1f}s)")
    gone = obs.get("old_pods_gone")
    summary = (f"{load['requests']} requests by {load['concurrency']} workers in {load['seconds']:.1f}s, "
               f"{load['failed']} failed; rollout {rollout.get('seconds', 0):.1f}s, old pods gone at "
               f"{'never' if gone is None else f'{gone:.1f}s'}; pods {', '.join(sorted(old))} -> {', '.join(sorted(new))}")
    return result("restart", summary, problems)


# ---------------------------------------------------------------------------------------------
# Evaluation: Redis pod deleted


def redis_volume(pods: dict) -> str:
    """How the Redis pod's /data is backed: 'persistentVolumeClaim', 'emptyDir', ... or '?'."""
    for pod in pods.get("items") or []:
        if app_of(pod) != "redis":
            continue
        for c in pod["spec"].get("containers") or []:
            for m in c.get("volumeMounts") or []:
                if m.get("mountPath") == "/data":
                    for v in pod["spec"].get("volumes") or []:
                        if v.get("name") == m.get("name"):
                            return next((k for k in v if k != "name"), "?")
    return "?"


def evaluate_redis(obs: dict, before: dict, after: dict) -> Result:
    probes = obs["probes"]
    problems = []
    first_error = next((p for p in probes if p.get("status") != 200), None)
    first_503 = next((p for p in probes if p.get("status") == 503), None)
    if first_error is None:
        problems.append(f"no error answer in {probes[-1]['t'] if probes else 0:.1f}s of probing: was Redis deleted?")
    elif first_error.get("status") != 503:
        problems.append(f"the first answer without Redis was {first_error.get('status') or first_error.get('error')} "
                        f"at {first_error['t']:.1f}s, not 503")
    if first_503 is not None and first_503["t"] > FIRST_503_WITHIN:
        problems.append(f"first 503 only {first_503['t']:.1f}s after the delete (bound {FIRST_503_WITHIN:g}s)")
    outage = [p for p in probes if p.get("status") != 200]
    statuses: dict[str, int] = {}
    for p in outage:
        key = str(p.get("status") or "no answer")
        statuses[key] = statuses.get(key, 0) + 1
        if p.get("status") is None:
            problems.append(f"t={p['t']:.1f}s: no answer: {p.get('error')}")
            continue
        if p["elapsed"] > QUICK_ANSWER:
            problems.append(f"t={p['t']:.1f}s: {p['status']} took {p['elapsed']:.1f}s (bound {QUICK_ANSWER:g}s)")
        if p["status"] not in (502, 503, 504):
            problems.append(f"t={p['t']:.1f}s: status {p['status']} during the outage")
        for problem in exchange_problems({**p, "name": "probe", "method": "GET"}):
            problems.append(f"t={p['t']:.1f}s: {problem}")
    recovered = obs.get("recovered_at")
    if recovered is None:
        problems.append(f"no recovery within {RECOVERY_WITHIN:g}s")
    users = obs["users"]
    lost = [u for u in users if u.get("status") != 200 or u.get("email_after") != u["email"]]
    if not users:
        problems.append("no user was created before the delete")
    if lost:
        volume = redis_volume(before)
        hint = (f"; the Redis /data volume is an {volume}, which dies with the pod (enable redis.persistence)"
                if volume == "emptyDir" else "")
        problems.append(f"{len(lost)} of {len(users)} users created before are gone "
                        f"(GET: {sorted({str(u.get('status')) for u in lost})}){hint}")
    old_redis = {p["metadata"]["name"]: p["metadata"].get("uid") for p in before.get("items") or [] if app_of(p) == "redis"}
    new_redis = {p["metadata"]["name"]: p["metadata"].get("uid") for p in after.get("items") or [] if app_of(p) == "redis"}
    if old_redis and old_redis == new_redis:
        problems.append("the Redis pod has the same uid as before: it was not deleted")
    counts_before = restart_counts(before)
    counts_after = restart_counts(after)
    problems += compare_restarts(counts_before, counts_after)
    health, _ = evaluate_pods(after)
    problems += [f"after: {p}" for p in health if not p.startswith("no pod")]
    f503 = f"{first_503['t']:.1f}s" if first_503 else "never"
    summary = (f"first 503 after {f503}, outage answers {statuses or 'none'} (slowest "
               f"{max((p['elapsed'] for p in outage if p.get('status')), default=0):.2f}s), recovered after "
               f"{'never' if recovered is None else f'{recovered:.1f}s'}; users kept {len(users) - len(lost)}/{len(users)}; "
               f"restarts {format_restarts(counts_before)} -> {format_restarts(counts_after)}")
    return result("redis", summary, problems)


# ---------------------------------------------------------------------------------------------
# Recordings: the observations of each step, in files


def recording_files(step: str) -> list[str]:
    return {
        "pods": ["pods.json"],
        "objects": ["objects.yaml", "namespace.yaml"],
        "crud": ["crud.json"],
        "metrics": ["metrics-api-gateway.txt", "metrics-user-service.txt"],
        "restart": ["restart.json", "restart-pods-before.json", "restart-pods-after.json"],
        "redis": ["redis.json", "redis-pods-before.json", "redis-pods-after.json"],
    }[step]


def load_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix == ".yaml":
        return list(yaml.safe_load_all(text))
    return text


def save_file(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    elif path.suffix == ".yaml":
        text = data if isinstance(data, str) else yaml.safe_dump_all(data, sort_keys=False)
    else:
        text = data
    path.write_text(text, encoding="utf-8")


def evaluate_step(step: str, obs: dict[str, Any], local_images: bool = False) -> Result:
    """The evaluation of one step from its observations (file name -> content)."""
    if step == "pods":
        return evaluate_pods_step(obs["pods.json"])
    if step == "objects":
        return evaluate_objects(obs["objects.yaml"] + obs["namespace.yaml"], local_images)
    if step == "crud":
        return evaluate_crud(obs["crud.json"])
    if step == "metrics":
        return evaluate_metrics({s: obs.get(f"metrics-{s}.txt") for s in SERVICES})
    if step == "restart":
        return evaluate_restart(obs["restart.json"], obs["restart-pods-before.json"], obs["restart-pods-after.json"])
    if step == "redis":
        return evaluate_redis(obs["redis.json"], obs["redis-pods-before.json"], obs["redis-pods-after.json"])
    raise ValueError(step)


def evaluate_recording(directory: Path, skip: list[str], local_images: bool = False) -> list[Result]:
    results = []
    for step in STEPS:
        if step in skip:
            continue
        files = recording_files(step)
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            results.append(Result(step, False, f"not in the recording {directory}: {', '.join(missing)}"))
            continue
        results.append(evaluate_step(step, {f: load_file(directory / f) for f in files}, local_images))
    return results


# ---------------------------------------------------------------------------------------------
# I/O: kubectl


class StepError(Exception):
    """A step could not make its observations."""


class KubectlError(StepError):
    pass


class Kubectl:
    def __init__(self, context: str | None, namespace: str):
        self.base = ["kubectl"] + (["--context", context] if context else [])
        self.namespace = namespace

    def argv(self, args: list[str], namespaced: bool = True) -> list[str]:
        return self.base + (["-n", self.namespace] if namespaced else []) + args

    def run(self, args: list[str], namespaced: bool = True, timeout: float = 60) -> str:
        try:
            proc = subprocess.run(self.argv(args, namespaced), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise KubectlError(f"kubectl {' '.join(args)}: no answer in {timeout:g}s") from None
        if proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def json(self, args: list[str], namespaced: bool = True) -> Any:
        return json.loads(self.run(args + ["-o", "json"], namespaced))

    def pods(self, selector: str | None = None) -> dict:
        return self.json(["get", "pods"] + (["-l", selector] if selector else []))


class PortForward:
    """kubectl port-forward svc/NAME :PORT on 127.0.0.1; .url once it listens; close() ends it."""

    def __init__(self, kubectl: Kubectl, service: str, port: int, timeout: float = 30):
        # stderr goes to a file: a pipe nobody reads would block kubectl once it is full
        self.errors = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            kubectl.argv(["port-forward", "--address", "127.0.0.1", f"svc/{service}", f":{port}"]),
            stdout=subprocess.PIPE, stderr=self.errors, text=True,
        )
        self.port: str | None = None
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.listening.wait(timeout) or self.port is None:
            self.errors.seek(0)
            why = self.errors.read().strip()
            self.close()
            raise KubectlError(f"port-forward to svc/{service}:{port} did not start: {why}")
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        """Finds the local port, then keeps draining stdout (a line per connection)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if m and self.port is None:
                self.port = m.group(1)
                self.listening.set()
        self.listening.set()  # kubectl exited

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errors.close()


# ---------------------------------------------------------------------------------------------
# I/O: HTTP


class Api:
    """Requests to one base URL; each returns an exchange dict (see evaluation above)."""

    def __init__(self, base_url: str, host: str | None = None, insecure: bool = False, run_id: str = ""):
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.host = host
        self.context = ssl._create_unverified_context() if insecure else None  # noqa: S323 (opt-in)
        self.run_id = run_id
        self.counter = 0
        self.lock = threading.Lock()

    def request(self, name: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
                content_type: str | None = "application/json", timeout: float = REQUEST_TIMEOUT,
                send_request_id: bool = True) -> dict:
        """Without send_request_id the service must make up an X-Request-ID itself."""
        rid = None
        headers = {"Connection": "close", "Accept": "application/json"}
        if send_request_id:
            with self.lock:
                self.counter += 1
                rid = f"e2e-{self.run_id}-{self.counter}"
            headers["X-Request-ID"] = rid
        if self.host:
            headers["Host"] = self.host
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None and content_type:
            headers["Content-Type"] = content_type
        ex: dict[str, Any] = {"name": name, "method": method, "path": path, "request_id": rid,
                              "status": None, "headers": {}, "body": "", "error": None}
        start = time.monotonic()
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.netloc, timeout=timeout, context=self.context)
        else:
            conn = http.client.HTTPConnection(self.netloc, timeout=timeout)
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            ex["body"] = resp.read().decode("utf-8", "replace")
            ex["status"] = resp.status
            ex["headers"] = {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as err:
            ex["error"] = f"{type(err).__name__}: {err}"
        finally:
            conn.close()
        ex["elapsed"] = round(time.monotonic() - start, 4)
        return ex


def new_user(run_id: str, label: str) -> dict:
    return {"name": f"E2E {label}", "email": f"e2e-{run_id}-{label}@example.com"}


def crud_scenario(api: Api, run_id: str) -> list[dict]:
    """The CRUD requests whose answers evaluate_crud judges (names as in CRUD_EXPECT)."""
    ex: list[dict] = []
    created = []
    for n in (1, 2, 3):
        ex.append(api.request(f"create-{n}", "POST", "/api/users", new_user(run_id, f"crud-{n}")))
        created.append(body_json(ex[-1]) if ex[-1]["status"] == 201 else None)
    ids = [u["id"] if isinstance(u, dict) and "id" in u else str(uuid.uuid4()) for u in created]
    ex.append(api.request("get-1", "GET", f"/api/users/{ids[0]}"))
    ex.append(api.request("page-small", "GET", "/api/users?limit=2"))
    cursor = None
    for page in range(MAX_PAGES):
        query = {"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
        ex.append(api.request(f"page-walk-{page + 1}", "GET", f"/api/users?{urlencode(query)}"))
        body = body_json(ex[-1])
        cursor = body.get("next_cursor") if ex[-1]["status"] == 200 and isinstance(body, dict) else None
        if not cursor:
            break
    ex.append(api.request("patch-1", "PATCH", f"/api/users/{ids[0]}", {"name": "E2E Renamed"}))
    ex.append(api.request("duplicate-email", "POST", "/api/users",
                          {"name": "E2E Duplicate", "email": new_user(run_id, "crud-2")["email"].upper()}))
    ex.append(api.request("invalid", "POST", "/api/users", {"email": "nope"}))
    ex.append(api.request("unsupported-media", "POST", "/api/users", raw=b"x", content_type="text/plain"))
    ex.append(api.request("bad-limit", "GET", "/api/users?limit=0"))
    ex.append(api.request("unknown-route", "GET", "/api/nope"))
    ex.append(api.request("method-not-allowed", "PUT", "/api/users", {}))
    ex.append(api.request("delete-3", "DELETE", f"/api/users/{ids[2]}"))
    ex.append(api.request("get-deleted", "GET", f"/api/users/{ids[2]}"))
    ex.append(api.request("get-unknown", "GET", f"/api/users/{uuid.uuid4()}"))
    ex.append(api.request("generated-request-id", "GET", "/api/users?limit=1", send_request_id=False))
    return ex


def run_load(api: Api, user_ids: list[str], concurrency: int, stop: threading.Event, run_id: str,
             created: list[dict]) -> dict:
    """Workers loop over GET one user, GET a page and (every 5th request) POST a user until stop
    is set. Any answer other than 200/201, or no answer, is a failed request."""
    start = time.monotonic()
    lock = threading.Lock()
    stats = {"requests": 0, "failed": 0, "failures": [], "by_status": {}}

    def worker(w: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 5 == 0:
                user = new_user(run_id, f"load-{w}-{n}")
                ex, ok = api.request("load", "POST", "/api/users", user), 201
            elif n % 2:
                ex, ok = api.request("load", "GET", f"/api/users/{user_ids[n % len(user_ids)]}"), 200
            else:
                ex, ok = api.request("load", "GET", "/api/users?limit=5"), 200
            with lock:
                stats["requests"] += 1
                key = str(ex["status"] or "no answer")
                stats["by_status"][key] = stats["by_status"].get(key, 0) + 1
                if ex["status"] != ok:
                    stats["failed"] += 1
                    stats["failures"].append({"t": round(time.monotonic() - start, 3), "method": ex["method"],
                                              "path": ex["path"], "status": ex["status"], "error": ex["error"],
                                              "body": ex["body"][:200]})
                elif ex["method"] == "POST":
                    body = body_json(ex)
                    if isinstance(body, dict) and body.get("id"):
                        created.append({"id": body["id"], "email": user["email"]})

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["seconds"] = round(time.monotonic() - start, 3)
    stats["concurrency"] = concurrency
    stats["failures"] = stats["failures"][:50]
    return stats


# ---------------------------------------------------------------------------------------------
# Live steps: observe, then evaluate


class Live:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.kubectl = Kubectl(args.context, args.namespace)
        self.run_id = uuid.uuid4().hex[:8]
        self.forwards: list[PortForward] = []
        self.api: Api | None = None
        self.users: list[dict] = []  # {"id", "email"} of users that must still exist
        self.cleanup_ids: list[str] = []
        self.observations: dict[str, Any] = {}

    def close(self) -> None:
        for forward in self.forwards:
            forward.close()

    def record(self, name: str, data: Any) -> Any:
        self.observations[name] = data
        return data

    def entry(self) -> Api:
        if self.api is None:
            if self.args.base_url:
                self.api = Api(self.args.base_url, self.args.host, self.args.insecure, self.run_id)
            else:
                forward = PortForward(self.kubectl, "api-gateway", SERVICE_PORTS["api-gateway"])
                self.forwards.append(forward)
                self.api = Api(forward.url, run_id=self.run_id)
        return self.api

    def ensure_users(self) -> None:
        if self.users:
            return
        api = self.entry()
        for n in (1, 2):
            user = new_user(self.run_id, f"seed-{n}")
            ex = api.request("seed", "POST", "/api/users", user)
            if ex["status"] != 201:
                raise StepError(f"cannot create a test user: {ex['status'] or ex['error']} {ex['body'][:200]}")
            self.users.append({"id": body_json(ex)["id"], "email": user["email"]})
            self.cleanup_ids.append(self.users[-1]["id"])

    def pods(self) -> None:
        self.record("pods.json", self.kubectl.pods())

    def objects(self) -> None:
        self.record("objects.yaml", [yaml.safe_load(self.kubectl.run(["get", LIVE_KINDS, "-o", "yaml"]))])
        self.record("namespace.yaml", [yaml.safe_load(self.kubectl.run(
            ["get", "namespace", self.args.namespace, "-o", "yaml"], namespaced=False))])

    def crud(self) -> None:
        if not self.args.base_url:
            ingresses = self.kubectl.json(["get", "ingress"]).get("items") or []
            if ingresses:
                print(f"note: an Ingress exists ({ingresses[0]['metadata']['name']}); pass --base-url to test through it")
        exchanges = self.record("crud.json", crud_scenario(self.entry(), self.run_id))
        for n in (1, 2, 3):
            user = next((body_json(e) for e in exchanges if e["name"] == f"create-{n}" and e["status"] == 201), None)
            if isinstance(user, dict):
                self.cleanup_ids.append(user["id"])
                if n < 3:  # create-3 is deleted by the scenario
                    self.users.append({"id": user["id"], "email": user["email"]})

    def metrics(self) -> None:
        for service in SERVICES:
            forward = PortForward(self.kubectl, service, SERVICE_PORTS[service])
            try:
                ex = Api(forward.url, run_id=self.run_id).request("metrics", "GET", "/metrics")
            finally:
                forward.close()
            if ex["status"] != 200:
                print(f"note: GET /metrics of {service}: {ex['status'] or ex['error']}")
            self.record(f"metrics-{service}.txt", ex["body"] if ex["status"] == 200 else None)

    def restart(self) -> None:
        self.ensure_users()
        api = self.entry()
        selector = f"{APP_LABEL}=user-service"
        before = self.record("restart-pods-before.json", self.kubectl.pods(selector))
        old = set(restart_counts(before, ("user-service",)))
        stop = threading.Event()
        created: list[dict] = []
        load: dict = {}
        loader = threading.Thread(target=lambda: load.update(run_load(
            api, [u["id"] for u in self.users], self.args.concurrency, stop, self.run_id, created)))
        start = time.monotonic()
        loader.start()
        rollout: dict[str, Any] = {"ok": False, "output": ""}
        gone = None
        try:
            time.sleep(1)  # the load is running before the restart
            self.kubectl.run(["rollout", "restart", "deployment/user-service"])
            try:
                rollout["output"] = self.kubectl.run(["rollout", "status", "deployment/user-service",
                                                      f"--timeout={ROLLOUT_TIMEOUT}s"], timeout=ROLLOUT_TIMEOUT + 10)
                rollout["ok"] = True
            except KubectlError as err:
                rollout["output"] = str(err)
            rollout["seconds"] = round(time.monotonic() - start, 3)
            # rollout status returns while old pods may still be draining: load until they are gone
            while time.monotonic() - start < ROLLOUT_TIMEOUT:
                if not old & set(restart_counts(self.kubectl.pods(selector), ("user-service",))):
                    gone = round(time.monotonic() - start, 3)
                    break
                time.sleep(1)
            time.sleep(max(0.0, self.args.load_seconds - (time.monotonic() - start)))
        finally:
            stop.set()
            loader.join()
        self.users += created
        self.cleanup_ids += [u["id"] for u in created]
        self.record("restart.json", {"load": load, "rollout": rollout, "old_pods_gone": gone})
        self.record("restart-pods-after.json", self.kubectl.pods(selector))

    def redis(self) -> None:
        self.ensure_users()
        api = self.entry()
        before = self.record("redis-pods-before.json", self.kubectl.pods())
        pod = next((p["metadata"]["name"] for p in before["items"] if app_of(p) == "redis"), None)
        if pod is None:
            raise StepError("no Redis pod to delete")
        users = [dict(u) for u in self.users]
        probes: list[dict] = []
        recovered = None
        start = time.monotonic()
        self.kubectl.run(["delete", "pod", pod, "--wait=false"])
        ok_streak = 0
        while True:
            t = time.monotonic() - start
            ex = api.request("probe", "GET", "/api/users?limit=1")
            probes.append({k: ex[k] for k in ("status", "headers", "body", "elapsed", "error", "request_id", "path")}
                          | {"t": round(t, 3)})
            seen_error = any(p["status"] != 200 for p in probes)
            ok_streak = ok_streak + 1 if ex["status"] == 200 else 0
            if seen_error and ok_streak >= 3:
                recovered = next(p["t"] for p in probes[-3:])
                break
            if (not seen_error and t > FIRST_503_WITHIN) or t > RECOVERY_WITHIN:
                break
            time.sleep(PROBE_INTERVAL)
        for probe in probes:  # keep the recording small: bodies of successes are not needed
            if probe["status"] == 200:
                probe["body"] = ""
        for user in users:
            ex = api.request("check", "GET", f"/api/users/{user['id']}")
            body = body_json(ex)
            user["status"] = ex["status"]
            user["email_after"] = body.get("email") if isinstance(body, dict) else None
        self.record("redis.json", {"deleted_pod": pod, "probes": probes, "recovered_at": recovered, "users": users})
        try:  # not fatal: the pod health evaluation of the pods after reports a Redis that is not Ready
            self.kubectl.run(["wait", "--for=condition=Ready", "pod", "-l", f"{APP_LABEL}=redis", "--timeout=120s"],
                             timeout=130)
        except KubectlError as err:
            print(f"note: {err}")
        self.record("redis-pods-after.json", self.kubectl.pods())

    def cleanup(self) -> None:
        if self.api is None:
            return
        for user_id in self.cleanup_ids:
            self.api.request("cleanup", "DELETE", f"/api/users/{user_id}")


def collect_artifacts(kubectl: Kubectl, directory: Path) -> list[str]:
    """kubectl describe, events and every container's logs into DIR; returns what failed."""
    directory.mkdir(parents=True, exist_ok=True)
    failed = []

    def save(name: str, args: list[str], namespaced: bool = True) -> None:
        try:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(kubectl.run(args, namespaced), encoding="utf-8")
        except KubectlError as err:
            failed.append(str(err))

    save("get-all.txt", ["get", "all,cm,pvc,networkpolicy,pdb,hpa,ingress", "-o", "wide"])
    save("describe-pods.txt", ["describe", "pods"])
    save("describe-deployments.txt", ["describe", "deployments"])
    save("describe-statefulsets.txt", ["describe", "statefulsets"])
    save("events.txt", ["get", "events", "--sort-by=.lastTimestamp", "-o", "wide"])
    try:
        pods = kubectl.pods()
    except KubectlError as err:
        return failed + [str(err)]
    for pod in pods.get("items") or []:
        name = pod["metadata"]["name"]
        statuses = (pod.get("status") or {}).get("initContainerStatuses", []) + \
            (pod.get("status") or {}).get("containerStatuses", [])
        for c in statuses:
            save(f"logs/{name}_{c['name']}.log", ["logs", name, "-c", c["name"], "--tail=-1", "--timestamps"])
            if c.get("restartCount"):
                save(f"logs/{name}_{c['name']}.previous.log",
                     ["logs", name, "-c", c["name"], "--tail=-1", "--timestamps", "--previous"])
    return failed


def run_live(args: argparse.Namespace) -> list[Result]:
    live = Live(args)
    results: list[Result] = []
    try:
        for step in STEPS:
            if step in args.skip:
                continue
            started = time.monotonic()
            try:
                getattr(live, step)()
                files = recording_files(step)
                res = evaluate_step(step, {f: live.observations.get(f) for f in files}, args.local_images)
            except Exception as err:  # noqa: BLE001 - a step that crashes fails; the others still run
                res = Result(step, False, f"could not run: {type(err).__name__}: {err}")
            res.summary += f" [{time.monotonic() - started:.1f}s]"
            results.append(res)
            print("\n".join(res.lines()), flush=True)
        live.cleanup()
    finally:
        live.close()
        if args.record:
            for name, data in live.observations.items():
                save_file(Path(args.record) / name, data)
        if args.artifacts and not all(r.ok for r in results):
            directory = Path(args.artifacts)
            for name, data in live.observations.items():
                save_file(directory / "recording" / name, data)
            for err in collect_artifacts(live.kubectl, directory):
                print(f"artifacts: {err}", file=sys.stderr)
            print(f"artifacts: written to {directory}")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_recording:
        directory = Path(args.from_recording)
        if not directory.is_dir():
            print(f"e2e: no recording directory {directory}", file=sys.stderr)
            return 2
        results = evaluate_recording(directory, args.skip, args.local_images)
        for res in results:
            print("\n".join(res.lines()))
        if args.artifacts:
            print("artifacts: nothing to collect from a recording")
    else:
        if shutil.which("kubectl") is None:
            print("e2e: kubectl is not on PATH", file=sys.stderr)
            return 2
        results = run_live(args)
    failed = [r.step for r in results if not r.ok]
    print(f"e2e: {len(results) - len(failed)} passed, {len(failed)} failed, {len(args.skip)} skipped"
          + (f" (failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
