"""Unit tests of scripts/e2e.py, offline: the evaluation of every step on the recordings in
scripts/e2e-fixtures/ and on variations of them, the argument parsing, the HTTP client and
scenarios against an in-process fake of the API, and the kubectl glue against a fake kubectl.

    python3 -m pytest -q scripts/e2e_test.py      (from the repository root; PyYAML, pytest and
                                                   kubernetes-validate, i.e. the .venv)
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "e2e-fixtures"
HEALTHY = FIXTURES / "healthy"
BROKEN = FIXTURES / "broken"


def load(directory: Path, name: str):
    return e2e.load_file(directory / name)


def pods_of(app: str, pods: dict) -> list[dict]:
    return [p for p in pods["items"] if e2e.app_of(p) == app]


# ---------------------------------------------------------------------------------------------
# Arguments


def test_defaults():
    args = e2e.parse_args([])
    assert args.namespace == "users-platform-dev"
    assert (args.load_seconds, args.concurrency, args.skip) == (5, 4, [])
    assert args.base_url is None and args.context is None and args.from_recording is None
    assert args.local_images is False


def test_local_images_is_an_option_of_live_runs_and_recordings():
    assert e2e.parse_args(["--local-images"]).local_images is True
    args = e2e.parse_args(["--from-recording", "x", "--local-images"])
    assert (args.from_recording, args.local_images) == ("x", True)


def test_skip_accepts_commas_and_repeats_in_step_order():
    args = e2e.parse_args(["--skip", "redis,pods", "--skip", "restart", "--skip", "pods"])
    assert args.skip == ["pods", "restart", "redis"]


@pytest.mark.parametrize("argv", [
    ["--skip", "nope"],
    ["--load-seconds", "0"],
    ["--load-seconds", "61"],
    ["--load-seconds", "five"],
    ["--concurrency", "17"],
    ["--concurrency", "0"],
    ["--host", "api.example.com"],
    ["--from-recording", "x", "--base-url", "http://x"],
    ["--from-recording", "x", "--context", "kind-users-platform"],
    ["--base-url", "ftp://x"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        e2e.parse_args(argv)
    assert exit_.value.code == 2


def test_entry_point_options():
    args = e2e.parse_args(["--base-url", "https://10.0.0.1", "--host", "api.dev.example.com", "--insecure",
                           "--context", "kind-users-platform", "-n", "other", "--load-seconds", "60",
                           "--concurrency", "16", "--artifacts", "out"])
    assert (args.base_url, args.host, args.insecure) == ("https://10.0.0.1", "api.dev.example.com", True)
    assert (args.context, args.namespace, args.load_seconds, args.concurrency, args.artifacts) == \
        ("kind-users-platform", "other", 60, 16, "out")


# ---------------------------------------------------------------------------------------------
# The recordings: the acceptance criterion


def test_healthy_recording_passes(capsys):
    # The healthy recording is a kind cluster (deploy-dev): images loaded by `kind load`, by tag.
    assert e2e.main(["--from-recording", str(HEALTHY), "--local-images"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == len(e2e.STEPS)
    assert "e2e: 6 passed, 0 failed, 0 skipped" in out


def test_healthy_recording_without_local_images_fails_only_on_digests(capsys):
    assert e2e.main(["--from-recording", str(HEALTHY)]) == 1
    out = capsys.readouterr().out
    assert [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("FAIL ")] == ["objects"]
    findings = [line for line in out.splitlines() if line.startswith("    - policy: ")]
    assert len(findings) == 3 and all(f.startswith("    - policy: image-no-digest ") for f in findings)


def test_broken_recording_fails_every_step(capsys):
    assert e2e.main(["--from-recording", str(BROKEN)]) == 1
    out = capsys.readouterr().out
    assert [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("FAIL ")] == list(e2e.STEPS)


def test_the_wrapper_exits_like_the_evaluation():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    wrapper = Path(__file__).resolve().parent / "e2e"
    healthy = subprocess.run([str(wrapper), "--from-recording", str(HEALTHY), "--local-images"], env=env,
                             capture_output=True, text=True)
    broken = subprocess.run([str(wrapper), "--from-recording", str(BROKEN), "--local-images"], env=env,
                            capture_output=True, text=True)
    assert (healthy.returncode, broken.returncode) == (0, 1), healthy.stdout + broken.stdout


def test_skipped_steps_are_not_evaluated(capsys):
    assert e2e.main(["--from-recording", str(BROKEN), "--skip", "pods,objects,crud,metrics,restart,redis"]) == 0
    assert "0 passed, 0 failed, 6 skipped" in capsys.readouterr().out


def test_a_step_missing_from_the_recording_fails(tmp_path, capsys):
    for f in HEALTHY.iterdir():
        if f.name != "crud.json":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    assert e2e.main(["--from-recording", str(tmp_path)]) == 1
    assert "FAIL crud: not in the recording" in capsys.readouterr().out


def test_no_recording_directory_is_a_usage_error(tmp_path):
    assert e2e.main(["--from-recording", str(tmp_path / "nothing")]) == 2


# ---------------------------------------------------------------------------------------------
# Pods


def test_healthy_pods_pass():
    problems, summary = e2e.evaluate_pods(load(HEALTHY, "pods.json"))
    assert problems == []
    assert summary.startswith("3/3 pods ready")


@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"])
def test_a_waiting_container_fails(reason):
    pods = load(HEALTHY, "pods.json")
    pod = pods_of("api-gateway", pods)[0]
    status = pod["status"]["containerStatuses"][0]
    status.update(ready=False, started=False, state={"waiting": {"reason": reason, "message": "boom"}})
    problems, _ = e2e.evaluate_pods(pods)
    assert any(f"waiting: {reason} (broken): boom" in p for p in problems)


def test_a_not_ready_pod_fails():
    pods = load(HEALTHY, "pods.json")
    pod = pods_of("user-service", pods)[0]
    next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"
    problems, _ = e2e.evaluate_pods(pods)
    assert problems == [f"{pod['metadata']['name']} is not Ready"]


def test_a_restarted_container_fails_with_its_last_state():
    pods = load(HEALTHY, "pods.json")
    status = pods_of("redis", pods)[0]["status"]["containerStatuses"][0]
    status.update(restartCount=2, lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
    problems, _ = e2e.evaluate_pods(pods)
    assert problems == ["redis-0/redis restarted 2 times (last: OOMKilled, exit 137)"]


def test_pending_terminating_and_missing_pods_fail():
    pods = load(HEALTHY, "pods.json")
    pods_of("api-gateway", pods)[0]["status"]["phase"] = "Pending"
    pods_of("user-service", pods)[0]["metadata"]["deletionTimestamp"] = "2026-12-03T07:00:00Z"
    pods["items"] = [p for p in pods["items"] if e2e.app_of(p) != "redis"]
    problems, _ = e2e.evaluate_pods(pods)
    assert "no pod of redis" in problems
    assert any(p.endswith("is Pending") for p in problems)
    assert any(p.endswith("is terminating") for p in problems)


def test_broken_pods_name_the_crash_loop():
    problems, _ = e2e.evaluate_pods(load(BROKEN, "pods.json"))
    assert any("CrashLoopBackOff" in p for p in problems)
    assert any("restarted 5 times (last: Error, exit 1)" in p for p in problems)


def test_restart_counts_compare_pods_and_counts():
    before = load(HEALTHY, "redis-pods-before.json")
    counts = e2e.restart_counts(before)
    assert sorted(counts) == ["api-gateway-7d9c6b5f4d-x2k8q", "user-service-6c8a9e0d7f-q9w3r"]
    assert e2e.compare_restarts(counts, copy.deepcopy(counts)) == []
    after = copy.deepcopy(counts)
    after["api-gateway-7d9c6b5f4d-x2k8q"]["restarts"] = 1
    after["user-service-6c8a9e0d7f-q9w3r"]["uid"] = "other"
    after["user-service-6c8a9e0d7f-aaaaa"] = {"uid": "new", "restarts": 0}
    assert e2e.compare_restarts(counts, after) == [
        "api-gateway-7d9c6b5f4d-x2k8q restarted: restartCount 0 -> 1",
        "user-service-6c8a9e0d7f-q9w3r was recreated",
        "user-service-6c8a9e0d7f-aaaaa is a new pod",
    ]
    del after["api-gateway-7d9c6b5f4d-x2k8q"]
    assert "api-gateway-7d9c6b5f4d-x2k8q is gone (replaced)" in e2e.compare_restarts(counts, after)


# ---------------------------------------------------------------------------------------------
# Live objects


def live_objects(directory: Path) -> list[dict]:
    return load(directory, "objects.yaml") + load(directory, "namespace.yaml")


def test_cleaning_removes_what_the_server_populates():
    docs = live_objects(HEALTHY)
    raw = next(o for o in docs[0]["items"] if o["kind"] == "Deployment")
    assert {"status"} <= set(raw) and {"uid", "managedFields", "resourceVersion", "generation"} <= set(raw["metadata"])
    cleaned = e2e.clean_object(raw)
    assert "status" not in cleaned
    assert not set(e2e.SERVER_METADATA) & set(cleaned["metadata"])
    assert not set(e2e.SERVER_ANNOTATIONS) & set(cleaned["metadata"].get("annotations", {}))
    assert "creationTimestamp" not in cleaned["spec"]["template"]["metadata"]
    assert cleaned["metadata"]["annotations"]["checkov.io/skip1"].startswith("CKV_K8S_15")  # ours stay
    assert "status" in raw  # the input is not modified


def test_cleaning_drops_automatic_objects_and_hpa_owned_replicas():
    objects = e2e.clean_objects(live_objects(HEALTHY))
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ConfigMap", "kube-root-ca.crt") not in names and ("ServiceAccount", "default") not in names
    assert ("Namespace", "users-platform-dev") in names
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert "replicas" not in by_name[("Deployment", "api-gateway")]["spec"]
    assert "replicas" not in by_name[("Deployment", "user-service")]["spec"]
    assert by_name[("StatefulSet", "redis")]["spec"]["replicas"] == 1  # no HPA: the count is ours
    claim = by_name[("StatefulSet", "redis")]["spec"]["volumeClaimTemplates"][0]
    assert "status" not in claim and "creationTimestamp" not in claim["metadata"]


def test_the_policy_engine_needs_the_cleaning(tmp_path):
    raw = [o for o in live_objects(HEALTHY)[0]["items"]] + live_objects(HEALTHY)[1:]
    findings = [f for f in e2e.run_policy(raw, tmp_path) if not f.startswith("image-no-digest ")]  # kind: by tag
    assert findings and all(f.startswith("hpa-fixed-replicas ") for f in findings)


def test_healthy_live_objects_have_no_findings():
    res = e2e.evaluate_objects(live_objects(HEALTHY), local_images=True)
    assert res.ok, res.problems
    assert "0 policy findings (3 image-no-digest ignored: --local-images" in res.summary
    assert ", 24 validated" in res.summary


def test_without_local_images_an_image_without_digest_is_a_finding():
    res = e2e.evaluate_objects(live_objects(HEALTHY))
    assert not res.ok
    assert sorted(p.split()[2] for p in res.problems) == [
        "Deployment/users-platform-dev/api-gateway:", "Deployment/users-platform-dev/user-service:",
        "StatefulSet/users-platform-dev/redis:"]
    assert all(p.startswith("policy: image-no-digest ") for p in res.problems)
    assert "3 policy findings, 24 validated" in res.summary and "ignored" not in res.summary


def test_local_images_ignores_no_other_rule_nor_a_digest_elsewhere():
    docs = live_objects(HEALTHY)
    gateway = next(o for o in docs[0]["items"] if o["kind"] == "Deployment" and o["metadata"]["name"] == "api-gateway")
    gateway["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/users-platform/api-gateway:latest"
    res = e2e.evaluate_objects(docs, local_images=True)
    assert [p.split()[1] for p in res.problems] == ["image-mutable-tag"]
    assert "1 policy findings (3 image-no-digest ignored" in res.summary


def test_broken_live_objects_are_reported_by_the_policy_engine():
    res = e2e.evaluate_objects(live_objects(BROKEN), local_images=True)
    assert not res.ok
    rules = sorted(p.split()[1] for p in res.problems if p.startswith("policy: "))
    assert rules == ["image-mutable-tag", "memory-limit-missing"]
    assert all("Deployment/users-platform-dev/api-gateway" in p for p in res.problems)
    without = e2e.evaluate_objects(live_objects(BROKEN))
    assert sorted(p.split()[1] for p in without.problems) == \
        ["image-mutable-tag", "image-no-digest", "image-no-digest", "image-no-digest", "memory-limit-missing"]


def test_an_invalid_live_object_fails_the_schema_check():
    docs = live_objects(HEALTHY)
    service = next(o for o in docs[0]["items"] if o["kind"] == "Service")
    service["spec"]["clusterIp"] = "10.96.0.1"  # a misspelt field: only --strict rejects it
    res = e2e.evaluate_objects(docs)
    assert not res.ok
    assert any(p.startswith("schema: ") and "clusterIp" in p for p in res.problems), res.problems


def test_live_objects_without_namespace_or_workload_fail():
    docs = load(HEALTHY, "objects.yaml")
    docs[0]["items"] = [o for o in docs[0]["items"] if o["metadata"]["name"] != "redis" or o["kind"] != "StatefulSet"]
    res = e2e.evaluate_objects(docs)
    assert "the Namespace object is missing (namespace-pod-security cannot be checked)" in res.problems
    assert "no Deployment/StatefulSet redis" in res.problems


# ---------------------------------------------------------------------------------------------
# CRUD through the entry point


def crud_by_name(directory: Path) -> tuple[list[dict], dict]:
    exchanges = load(directory, "crud.json")
    return exchanges, {ex["name"]: ex for ex in exchanges}


def test_healthy_crud_passes():
    res = e2e.evaluate_crud(load(HEALTHY, "crud.json"))
    assert res.ok, res.problems


def test_broken_crud_names_each_breach():
    res = e2e.evaluate_crud(load(BROKEN, "crud.json"))
    text = "\n".join(res.problems)
    assert "unknown-route (GET /api/nope): no X-Request-ID header" in text
    assert "404 with content-type 'text/html'" in text
    assert "get-deleted" in text and "200, expected 404" in text
    assert "create-2: Location ''" in text


def test_an_echoed_request_id_must_be_ours():
    exchanges, by = crud_by_name(HEALTHY)
    by["get-1"]["headers"]["x-request-id"] = "something-else"
    res = e2e.evaluate_crud(exchanges)
    assert any("X-Request-ID 'something-else' is not the one sent" in p for p in res.problems)


def test_an_answer_to_a_request_without_id_needs_a_generated_one():
    exchanges, by = crud_by_name(HEALTHY)
    assert by["generated-request-id"]["request_id"] is None
    del by["generated-request-id"]["headers"]["x-request-id"]
    assert e2e.evaluate_crud(exchanges).problems == [
        "generated-request-id (GET /api/users?limit=1): no X-Request-ID header"]


def test_a_request_without_answer_fails():
    exchanges, by = crud_by_name(HEALTHY)
    by["patch-1"].update(status=None, error="ConnectionResetError: [Errno 104] Connection reset by peer")
    res = e2e.evaluate_crud(exchanges)
    assert res.problems == [f"patch-1 (PATCH {by['patch-1']['path']}): no answer: ConnectionResetError: [Errno 104] Connection reset by peer"]


def test_validation_errors_need_details():
    exchanges, by = crud_by_name(HEALTHY)
    by["invalid"]["body"] = json.dumps({"error": "validation failed"})
    assert not e2e.evaluate_crud(exchanges).ok


def test_a_missing_request_is_reported():
    exchanges = [ex for ex in load(HEALTHY, "crud.json") if ex["name"] != "bad-limit"]
    assert e2e.evaluate_crud(exchanges).problems == ["bad-limit: not made"]


def page(name: str, ids: list[str], total: int, cursor: str | None) -> dict:
    body = {"data": [{"id": i} for i in ids], "total": total, "next_cursor": cursor}
    return {"name": name, "method": "GET", "path": "/api/users", "status": 200, "headers": {}, "body": json.dumps(body)}


def test_pages_are_walked_to_the_end_without_duplicates():
    pages = [page("page-walk-1", ["a", "b"], 4, "c1"), page("page-walk-2", ["c", "d"], 4, None)]
    assert e2e.evaluate_pages(pages, ["b", "d"]) == (4, [])
    assert "page-walk: 1 users appear twice" in e2e.evaluate_pages(
        [page("page-walk-1", ["a", "b"], 4, "c1"), page("page-walk-2", ["b", "d"], 4, None)], [])[1]
    assert "page-walk: 3 users paged, total says 4" in e2e.evaluate_pages(
        [page("page-walk-1", ["a", "b"], 4, "c1"), page("page-walk-2", ["d"], 4, None)], [])[1]
    assert "page-walk: stopped after 1 pages with a next_cursor left" in e2e.evaluate_pages(
        [page("page-walk-1", ["a", "b"], 2, "c1")], [])[1]
    assert "page-walk: created users are not oldest first" in e2e.evaluate_pages(pages, ["d", "b"])[1]
    assert "missing from the pages" in e2e.evaluate_pages(pages, ["x"])[1][0]
    assert e2e.evaluate_pages([], []) == (0, ["page-walk: no pages"])


# ---------------------------------------------------------------------------------------------
# Metrics


def test_parse_metrics_reads_labels_and_values():
    text = '# HELP x y\nx_total{a="1",b="q\\"uote"} 3\nup 1\nbad line\nh_bucket{le="+Inf"} +Inf\n'
    assert e2e.parse_metrics(text) == [("x_total", {"a": "1", "b": 'q\\"uote'}, 3.0), ("up", {}, 1.0),
                                       ("h_bucket", {"le": "+Inf"}, float("inf"))]


def metric_pages(directory: Path) -> dict:
    return {s: load(directory, f"metrics-{s}.txt") for s in e2e.SERVICES}


def test_healthy_metrics_pass():
    assert e2e.evaluate_metrics(metric_pages(HEALTHY)).ok


@pytest.mark.parametrize("service,series", [
    ("api-gateway", "upstream_request_duration_seconds_bucket"),
    ("user-service", "users_total"),
    ("user-service", "redis_command_duration_seconds_bucket"),
    ("api-gateway", "build_info"),
])
def test_a_missing_key_series_fails(service, series):
    pages = metric_pages(HEALTHY)
    pages[service] = "\n".join(line for line in pages[service].splitlines() if not line.startswith(series))
    res = e2e.evaluate_metrics(pages)
    assert any(p.startswith(f"{service}: no {series}") for p in res.problems), res.problems


def test_a_down_dependency_fails_and_an_unscraped_service_fails():
    pages = metric_pages(HEALTHY)
    pages["api-gateway"] = pages["api-gateway"].replace('dependency_up{dependency="user-service"} 1',
                                                        'dependency_up{dependency="user-service"} 0')
    pages["user-service"] = None
    assert e2e.evaluate_metrics(pages).problems == [
        'api-gateway: dependency_up{dependency="user-service"} is 0, expected 1',
        "user-service: /metrics not scraped",
    ]


def test_broken_metrics_fail():
    assert e2e.evaluate_metrics(metric_pages(BROKEN)).problems == [
        'user-service: dependency_up{dependency="redis"} is 0, expected 1', "user-service: no users_total"]


# ---------------------------------------------------------------------------------------------
# Rollout restart under load


def restart_of(directory: Path):
    return (load(directory, "restart.json"), load(directory, "restart-pods-before.json"),
            load(directory, "restart-pods-after.json"))


def test_healthy_restart_passes():
    res = e2e.evaluate_restart(*restart_of(HEALTHY))
    assert res.ok, res.problems
    assert "1187 requests by 4 workers in 21.5s, 0 failed" in res.summary


def test_one_failed_request_fails_the_restart():
    obs, before, after = restart_of(HEALTHY)
    obs["load"]["failed"] = 1
    obs["load"]["failures"] = [{"t": 3.2, "method": "GET", "path": "/api/users?limit=5", "status": None,
                                "error": "RemoteDisconnected: Remote end closed connection without response"}]
    res = e2e.evaluate_restart(obs, before, after)
    assert res.problems[0] == "1 of 1187 requests failed"
    assert "RemoteDisconnected" in res.problems[1]


def test_restart_without_requests_rollout_or_new_pods_fails():
    obs, before, _ = restart_of(HEALTHY)
    obs["load"]["requests"] = 0
    obs["rollout"] = {"ok": False, "seconds": 180, "output": "error: timed out waiting for the condition"}
    res = e2e.evaluate_restart(obs, before, before)
    assert "no request was sent" in res.problems
    assert any(p.startswith("rollout did not finish: error: timed out") for p in res.problems)
    assert any(p.startswith("not restarted: user-service-5b7f8d9c6e-m4p7z") for p in res.problems)


def test_the_load_must_outlast_the_old_pods():
    obs, before, after = restart_of(HEALTHY)
    obs["load"]["seconds"] = 12.0
    assert e2e.evaluate_restart(obs, before, after).problems == [
        "the load stopped at 12.0s, before the old pods were gone (20.4s)"]
    obs["old_pods_gone"] = None
    assert "the old user-service pods were still there at the end of the load" in \
        e2e.evaluate_restart(obs, before, after).problems


def test_a_new_pod_that_is_not_ready_fails_the_restart():
    obs, before, after = restart_of(HEALTHY)
    after["items"][0]["status"]["containerStatuses"][0].update(
        ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}}, restartCount=3)
    assert not e2e.evaluate_restart(obs, before, after).ok


def test_broken_restart_fails():
    res = e2e.evaluate_restart(*restart_of(BROKEN))
    assert res.problems[0] == "3 of 1187 requests failed"


# ---------------------------------------------------------------------------------------------
# Redis pod deleted


def redis_of(directory: Path):
    return (load(directory, "redis.json"), load(directory, "redis-pods-before.json"),
            load(directory, "redis-pods-after.json"))


def test_healthy_redis_step_passes():
    res = e2e.evaluate_redis(*redis_of(HEALTHY))
    assert res.ok, res.problems
    assert "first 503 after 0.5s" in res.summary and "users kept 6/6" in res.summary


def test_redis_volume_is_read_from_the_pod():
    assert e2e.redis_volume(load(HEALTHY, "redis-pods-before.json")) == "persistentVolumeClaim"
    assert e2e.redis_volume(load(BROKEN, "redis-pods-before.json")) == "emptyDir"
    assert e2e.redis_volume({"items": []}) == "?"


def test_lost_users_fail_and_name_an_emptydir():
    obs, before, after = redis_of(BROKEN)
    res = e2e.evaluate_redis(obs, before, after)
    assert any(p.startswith("6 of 6 users created before are gone (GET: ['404']); the Redis /data volume is an emptyDir")
               for p in res.problems), res.problems
    obs, before, after = redis_of(HEALTHY)
    obs["users"][0].update(status=200, email_after="someone@else.example")
    assert e2e.evaluate_redis(obs, before, after).problems == [
        "1 of 6 users created before are gone (GET: ['200'])"]


def test_no_error_after_the_delete_fails():
    obs, before, after = redis_of(HEALTHY)
    obs["probes"] = [p for p in obs["probes"] if p["status"] == 200]
    res = e2e.evaluate_redis(obs, before, after)
    assert res.problems[0].startswith("no error answer in")


def test_the_first_error_must_be_a_quick_503():
    obs, before, after = redis_of(HEALTHY)
    first = next(p for p in obs["probes"] if p["status"] == 503)
    first.update(status=504, elapsed=2.004, body='{"error":"upstream timed out"}')
    res = e2e.evaluate_redis(obs, before, after)
    assert res.problems == ["the first answer without Redis was 504 at 0.5s, not 503"]
    first.update(status=503, elapsed=3.5, body='{"error":"storage unavailable"}')
    assert e2e.evaluate_redis(obs, before, after).problems == ["t=0.5s: 503 took 3.5s (bound 3s)"]


def test_the_first_503_must_come_within_the_bound():
    obs, before, after = redis_of(HEALTHY)
    for p in obs["probes"]:
        if p["status"] != 200:
            p["t"] += e2e.FIRST_503_WITHIN
    assert e2e.evaluate_redis(obs, before, after).problems == ["first 503 only 10.5s after the delete (bound 10s)"]


def test_outage_answers_keep_the_error_contract():
    obs, before, after = redis_of(HEALTHY)
    outage = [p for p in obs["probes"] if p["status"] != 200]
    outage[1].update(body="Service Unavailable", headers={"content-type": "text/plain"})
    outage[2].update(status=500)
    outage[3].update(status=None, error="TimeoutError: timed out")
    problems = e2e.evaluate_redis(obs, before, after).problems
    assert any("no X-Request-ID" in p for p in problems)
    assert any("is not {\"error\": ...}" in p for p in problems)
    assert any("status 500 during the outage" in p for p in problems)
    assert any("no answer: TimeoutError" in p for p in problems)


def test_no_recovery_fails():
    obs, before, after = redis_of(HEALTHY)
    obs["recovered_at"] = None
    assert e2e.evaluate_redis(obs, before, after).problems == ["no recovery within 120s"]


def test_a_service_restart_or_an_undeleted_redis_fails():
    obs, before, after = redis_of(HEALTHY)
    us = pods_of("user-service", after)[0]["status"]["containerStatuses"][0]
    us.update(restartCount=1, lastState={"terminated": {"reason": "Error", "exitCode": 1}})
    pods_of("redis", after)[0]["metadata"]["uid"] = pods_of("redis", before)[0]["metadata"]["uid"]
    problems = e2e.evaluate_redis(obs, before, after).problems
    assert "the Redis pod has the same uid as before: it was not deleted" in problems
    assert "user-service-6c8a9e0d7f-q9w3r restarted: restartCount 0 -> 1" in problems


def test_broken_redis_step_fails():
    problems = e2e.evaluate_redis(*redis_of(BROKEN)).problems
    assert problems[:2] == ["the first answer without Redis was 504 at 0.5s, not 503",
                            "first 503 only 11.8s after the delete (bound 10s)"]


# ---------------------------------------------------------------------------------------------
# The HTTP side against an in-process fake of the API (README, API)


class FakeApi(BaseHTTPRequestHandler):
    users: dict[str, dict] = {}
    order: list[str] = []
    lock = threading.Lock()
    broken_404 = False

    def log_message(self, *_args):
        pass

    def answer(self, status: int, body=None, extra: dict | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        rid = self.headers.get("X-Request-ID") or str(uuid.uuid4())
        if not (self.broken_404 and status == 404):
            self.send_header("X-Request-ID", rid)
        if body is not None:
            self.send_header("Content-Type", "text/plain" if self.broken_404 and status == 404 else "application/json")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self):
        parts = urlsplit(self.path)
        segs = parts.path.strip("/").split("/")
        if segs[:2] != ["api", "users"] or len(segs) > 3:
            return self.answer(404, {"error": f"no route for {self.command} {parts.path}"})
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with self.lock:
            if len(segs) == 2:
                if self.command == "GET":
                    q = parse_qs(parts.query)
                    limit = int(q.get("limit", ["100"])[0])
                    if not 1 <= limit <= 1000:
                        return self.answer(400, {"error": "limit must be between 1 and 1000"})
                    start = int(q.get("cursor", ["0"])[0])
                    ids = self.order[start:start + limit]
                    more = start + limit < len(self.order)
                    return self.answer(200, {"data": [self.users[i] for i in ids], "total": len(self.order),
                                             "next_cursor": str(start + limit) if more else None})
                if self.command != "POST":
                    return self.answer(405, {"error": "method not allowed"})
                if self.headers.get("Content-Type") != "application/json":
                    return self.answer(415, {"error": "expected request with `Content-Type: application/json`"})
                body = json.loads(raw)
                details = {}
                if "@" not in str(body.get("email", "")):
                    details["email"] = "is not a valid email address"
                if not body.get("name"):
                    details["name"] = "is required"
                if details:
                    return self.answer(422, {"error": "validation failed", "details": details})
                if any(u["email"].lower() == body["email"].lower() for u in self.users.values()):
                    return self.answer(409, {"error": "a user with this email already exists"})
                user = {"id": str(uuid.uuid4()), "name": body["name"], "email": body["email"],
                        "role": body.get("role", "user"), "createdAt": "t", "updatedAt": "t"}
                self.users[user["id"]] = user
                self.order.append(user["id"])
                return self.answer(201, user, {"Location": f"/api/users/{user['id']}"})
            user = self.users.get(segs[2])
            if user is None:
                return self.answer(404, {"error": "user not found"})
            if self.command == "GET":
                return self.answer(200, user)
            if self.command == "PATCH":
                user.update(json.loads(raw))
                return self.answer(200, user)
            if self.command == "DELETE":
                del self.users[user["id"]]
                self.order.remove(user["id"])
                return self.answer(204)
            return self.answer(405, {"error": "method not allowed"})

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = route


@pytest.fixture
def fake_api():
    handler = type("Handler", (FakeApi,), {"users": {}, "order": [], "broken_404": False})
    for n in range(3):  # seeded users, as dev's SEED_SAMPLE_USERS
        uid = str(uuid.uuid4())
        handler.users[uid] = {"id": uid, "name": f"Sample {n}", "email": f"s{n}@example.com", "role": "user",
                              "createdAt": "t", "updatedAt": "t"}
        handler.order.append(uid)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.service = "api-gateway"  # whose /metrics page the fake cluster serves here
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_crud_scenario_against_a_conforming_api_passes(fake_api, monkeypatch):
    handler, url = fake_api
    monkeypatch.setattr(e2e, "PAGE_LIMIT", 2)  # several pages
    exchanges = e2e.crud_scenario(e2e.Api(url, run_id="t1"), "t1")
    assert [ex["name"] for ex in exchanges if ex["name"].startswith("page-walk-")] == \
        ["page-walk-1", "page-walk-2", "page-walk-3"]
    res = e2e.evaluate_crud(exchanges)
    assert res.ok, res.problems
    assert len(handler.users) == 5  # 3 seeded + create-1, create-2 (create-3 deleted)


def test_crud_scenario_catches_a_non_json_404(fake_api):
    handler, url = fake_api
    handler.broken_404 = True
    res = e2e.evaluate_crud(e2e.crud_scenario(e2e.Api(url, run_id="t2"), "t2"))
    assert any("unknown-route (GET /api/nope): no X-Request-ID header" in p for p in res.problems)


def test_the_load_counts_requests_and_failures(fake_api):
    handler, url = fake_api
    stop = threading.Event()
    created: list[dict] = []
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    stats = e2e.run_load(e2e.Api(url, run_id="t3"), list(handler.order), 2, stop, "t3", created)
    assert stats["requests"] > 5 and stats["failed"] == 0 and stats["concurrency"] == 2
    assert created and all(u["id"] in handler.users for u in created)
    stop.clear()
    threading.Timer(0.3, stop.set).start()
    stats = e2e.run_load(e2e.Api(url, run_id="t4"), [str(uuid.uuid4())], 1, stop, "t4", [])
    assert stats["failed"] > 0 and stats["failures"][0]["status"] == 404


def test_no_answer_is_recorded_as_an_error():
    ex = e2e.Api("http://127.0.0.1:9", run_id="t5").request("x", "GET", "/api/users", timeout=1)
    assert ex["status"] is None and ex["error"]
    assert e2e.exchange_problems(ex)[0].startswith("x (GET /api/users): no answer: ")


def test_the_host_header_and_base_path_are_sent(fake_api):
    _, url = fake_api
    seen = {}

    class Capture(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_GET(self):
            seen.update(host=self.headers.get("Host"), path=self.path, rid=self.headers.get("X-Request-ID"))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/prefix/"
        ex = e2e.Api(base, host="api.dev.users-platform.example.com", run_id="t6").request("x", "GET", "/api/users")
    finally:
        server.shutdown()
        server.server_close()
    assert ex["status"] == 204
    assert seen == {"host": "api.dev.users-platform.example.com", "path": "/prefix/api/users", "rid": "e2e-t6-1"}


# ---------------------------------------------------------------------------------------------
# The kubectl side against a fake kubectl

FAKE_KUBECTL = r'''#!/usr/bin/env python3
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if "svc/missing" in args:
    print('error: services "missing" not found', file=sys.stderr)
    sys.exit(1)
if "port-forward" in args:
    print("Forwarding from 127.0.0.1:43117 -> 3000", flush=True)
    print("Forwarding from [::1]:43117 -> 3000", flush=True)
    time.sleep(60)
elif args[args.index("-n") + 2:args.index("-n") + 4] == ["get", "pods"]:
    print(open(os.environ["FAKE_PODS"]).read())
elif "logs" in args:
    print("log of " + " ".join(args))
elif "describe" in args or "events" in args or "get" in args:
    print("output of " + " ".join(args))
else:
    print("unexpected " + " ".join(args), file=sys.stderr)
    sys.exit(1)
'''


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.replace("/usr/bin/env python3", sys.executable))
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_PODS", str(BROKEN / "pods.json"))
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_port_forward_reads_the_local_port_and_stops_kubectl(fake_kubectl):
    forward = e2e.PortForward(e2e.Kubectl("kind-users-platform", "users-platform-dev"), "api-gateway", 3000)
    try:
        assert forward.url == "http://127.0.0.1:43117"
    finally:
        forward.close()
    assert forward.proc.poll() is not None
    assert fake_kubectl() == [["--context", "kind-users-platform", "-n", "users-platform-dev", "port-forward",
                               "--address", "127.0.0.1", "svc/api-gateway", ":3000"]]


def test_a_port_forward_that_does_not_start_says_why(fake_kubectl):
    with pytest.raises(e2e.KubectlError, match='did not start: error: services "missing" not found'):
        e2e.PortForward(e2e.Kubectl(None, "users-platform-dev"), "missing", 3000, timeout=10)


def test_artifacts_hold_describe_events_and_every_containers_logs(fake_kubectl, tmp_path):
    out = tmp_path / "artifacts"
    failed = e2e.collect_artifacts(e2e.Kubectl(None, "users-platform-dev"), out)
    assert failed == []
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "describe-deployments.txt", "describe-pods.txt", "describe-statefulsets.txt", "events.txt", "get-all.txt",
        "logs/api-gateway-7d9c6b5f4d-x2k8q_api-gateway.log",
        "logs/redis-0_redis.log",
        "logs/user-service-5b7f8d9c6e-m4p7z_user-service.log",
        "logs/user-service-5b7f8d9c6e-m4p7z_user-service.previous.log",  # it restarted
    ]
    calls = fake_kubectl()
    assert ["-n", "users-platform-dev", "logs", "redis-0", "-c", "redis", "--tail=-1", "--timestamps"] in calls
    assert ["-n", "users-platform-dev", "get", "events", "--sort-by=.lastTimestamp", "-o", "wide"] in calls


# ---------------------------------------------------------------------------------------------
# A whole live run against a fake cluster: a fake kubectl keeping pods in a state file, and the
# fake API, which answers 503 while the fake Redis is "deleted". Proves that what a live run
# records is what --from-recording evaluates, and that the steps drive kubectl as intended.

FAKE_CLUSTER = r'''#!/usr/bin/env python3
import json, os, sys, time
args = sys.argv[1:]
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
fixtures = os.environ["FAKE_FIXTURES"]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
rest = args[args.index("-n") + 2:] if "-n" in args else args[args.index("--context") + 2:]
def save():  # atomically: the fake API reads the state while requests run
    with open(state_path + ".new", "w") as f:
        json.dump(state, f)
    os.replace(state_path + ".new", state_path)
def pods(selector=None):
    items = state["pods"]
    if selector:
        key, value = selector.split("=")
        items = [p for p in items if p["metadata"]["labels"].get(key) == value]
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
def fixture(name):
    return open(os.path.join(fixtures, name)).read()
if rest[0] == "port-forward":
    print("Forwarding from 127.0.0.1:%s -> 3000" % json.loads(os.environ["FAKE_PORTS"])[rest[-2][4:]], flush=True)
    time.sleep(60)
elif rest[:2] == ["get", "pods"]:
    print(json.dumps(pods(rest[rest.index("-l") + 1] if "-l" in rest else None)))
elif rest[:2] == ["get", "ingress"]:
    print(json.dumps({"apiVersion": "v1", "items": [], "kind": "List"}))
elif rest[0] == "get" and rest[1].startswith("deploy,sts,svc"):
    print(fixture("objects.yaml"))
elif rest[:2] == ["get", "namespace"]:
    print(fixture("namespace.yaml"))
elif rest[:2] == ["rollout", "restart"]:
    new = json.loads(fixture("restart-pods-after.json"))["items"][0]
    state["pods"] = [new if p["metadata"]["labels"]["app.kubernetes.io/name"] == "user-service" else p for p in state["pods"]]
    save()
elif rest[:2] == ["rollout", "status"]:
    print('deployment "user-service" successfully rolled out')
elif rest[:2] == ["delete", "pod"]:
    state["outage_until"] = time.time() + 1.5
    new = [p for p in json.loads(fixture("redis-pods-after.json"))["items"] if p["metadata"]["name"] == "redis-0"][0]
    state["pods"] = [new if p["metadata"]["name"] == "redis-0" else p for p in state["pods"]]
    if os.environ.get("FAKE_LOSE_USERS"):
        state["lose_users"] = True
    save()
elif rest[0] in ("wait", "describe", "logs") or rest[:2] == ["get", "events"] or rest[0] == "get":
    print("output of " + " ".join(rest))
else:
    print("unexpected " + " ".join(args), file=sys.stderr)
    sys.exit(1)
'''


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch, fake_api):
    handler, url = fake_api
    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps({"pods": load(HEALTHY, "pods.json")["items"]}))
    pages = {"api-gateway": load(HEALTHY, "metrics-api-gateway.txt"), "user-service": load(HEALTHY, "metrics-user-service.txt")}

    original = handler.route

    def route(self):
        state = json.loads(state_path.read_text())
        if self.path == "/metrics":
            page = pages[self.server.service].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("X-Request-ID", self.headers.get("X-Request-ID", "x"))
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return None
        if state.get("lose_users") and handler.users:
            handler.users.clear()
            handler.order.clear()
        if time.time() < state.get("outage_until", 0):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return self.answer(503, {"error": "storage unavailable"})
        return original(self)

    handler.route = route
    handler.do_GET = handler.do_POST = handler.do_PATCH = handler.do_DELETE = handler.do_PUT = route
    metrics_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    metrics_server.service = "user-service"
    threading.Thread(target=metrics_server.serve_forever, daemon=True).start()
    gateway_port = urlsplit(url).port

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_CLUSTER.replace("/usr/bin/env python3", sys.executable))
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state_path))
    monkeypatch.setenv("FAKE_FIXTURES", str(HEALTHY))
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_PORTS", json.dumps({"api-gateway": gateway_port,
                                                 "user-service": metrics_server.server_address[1]}))
    yield handler, lambda: [json.loads(line) for line in log.read_text().splitlines()]
    metrics_server.shutdown()
    metrics_server.server_close()


def test_a_live_run_against_a_healthy_fake_cluster_passes_and_replays(fake_cluster, tmp_path, capsys):
    handler, calls = fake_cluster
    recording = tmp_path / "recording"
    code = e2e.main(["--context", "fake", "--load-seconds", "1", "--concurrency", "2", "--record", str(recording),
                     "--artifacts", str(tmp_path / "artifacts"), "--local-images"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("PASS ") == 6 and not (tmp_path / "artifacts").exists()
    assert len(handler.users) == 3  # the test users were deleted at the end; the seeded ones stay
    made = [c[4:] if c[2] == "-n" else c[2:] for c in calls()]  # without --context fake [-n NS]
    assert all(c[:2] == ["--context", "fake"] for c in calls())
    assert ["rollout", "restart", "deployment/user-service"] in made
    assert ["delete", "pod", "redis-0", "--wait=false"] in made
    assert ["port-forward", "--address", "127.0.0.1", "svc/user-service", ":3001"] in made
    assert sorted(p.name for p in recording.iterdir()) == sorted(f for s in e2e.STEPS for f in e2e.recording_files(s))
    assert "image-no-digest ignored: --local-images" in out
    assert e2e.main(["--from-recording", str(recording), "--local-images"]) == 0
    assert e2e.main(["--from-recording", str(recording), "--skip", "pods,crud,metrics,restart,redis"]) == 1
    redis = json.loads((recording / "redis.json").read_text())
    assert redis["users"] and redis["recovered_at"] > 1.0
    assert {p["status"] for p in redis["probes"]} == {200, 503}


def test_a_live_run_that_loses_users_fails_with_artifacts(fake_cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_LOSE_USERS", "1")
    artifacts = tmp_path / "artifacts"
    code = e2e.main(["--context", "fake", "--load-seconds", "1", "--skip", "objects,metrics,restart",
                     "--artifacts", str(artifacts)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL redis:" in out and "users created before are gone" in out
    assert (artifacts / "events.txt").is_file() and (artifacts / "describe-pods.txt").is_file()
    assert (artifacts / "logs" / "redis-0_redis.log").is_file()
    assert (artifacts / "recording" / "redis.json").is_file()
    assert e2e.main(["--from-recording", str(artifacts / "recording"), "--skip", "objects,metrics,restart"]) == 1
