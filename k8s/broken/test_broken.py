"""The broken deployment, its expected findings, the policy engine and the troubleshooting guide agree.

- every static fault in expected-findings.yaml is reported by k8s/policy/policy.py under its own
  rule id for its own object, and the engine reports nothing that is not documented;
- the real renders (k8s/rendered/{dev,prod}.yaml) produce no finding at all;
- every fault id has a section in docs/troubleshooting.md (naming its rule and carrying a fix
  diff) and every section has a fault id; every runtime fault has its demonstration test.

Run from anywhere: pytest k8s/broken
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
POLICY = REPO / "k8s" / "policy" / "policy.py"
DOC = REPO / "docs" / "troubleshooting.md"
RENDERED = REPO / "k8s" / "rendered"
EXPECTED = HERE / "expected-findings.yaml"
RUNTIME_TESTS = HERE / "test_runtime.py"

# The rule ids of the policy engine (k8s/policy/policy.py), plus `runtime` for faults no static rule sees.
KNOWN_RULES = {
    "selector-mismatch", "service-no-endpoints", "service-targetport", "probe-port",
    "liveness-failure-threshold", "liveness-depends-on-deps", "env-host-unknown",
    "redis-password-unwired", "memory-limit-missing", "hpa-target-missing",
    "hpa-cpu-without-request", "hpa-fixed-replicas", "pdb-blocks-drain", "prestop-exceeds-grace",
    "pod-no-networkpolicy", "dns-egress-missing", "netpol-service-port", "netpol-or-selector",
    "configmap-credentials", "env-literal-secret", "image-mutable-tag", "run-as-root",
    "container-port-mismatch", "namespace-pod-security", "entry-point-missing",
    "monitoring-unselected", "rule-selector-unscoped", "configmap-mutable", "image-no-digest",
}
FAULT_HEADING = re.compile(r"^### ([a-z][a-z0-9-]+) — .+$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# helpers

def object_key(ref: str) -> tuple[str, str, str]:
    """`Kind/ns/name` or `Kind/name` (cluster-scoped; the engine may print an empty or `-`
    namespace) -> (kind, namespace or "", name)."""
    parts = ref.split("/")
    if len(parts) == 2:
        return parts[0], "", parts[1]
    if len(parts) == 3:
        kind, ns, name = parts
        return kind, "" if ns in ("", "-", "_", "<cluster>", "cluster") else ns, name
    raise ValueError(f"not a Kind/namespace/name reference: {ref!r}")


def finding_key(rule: str, file: str, ref: str) -> tuple[str, str, tuple[str, str, str]]:
    return rule, Path(file).name, object_key(ref)


def load_expected() -> list[dict]:
    with EXPECTED.open() as f:
        return yaml.safe_load(f)["faults"]


def fault_findings(fault: dict) -> list[tuple[str, str, str]]:
    """(rule, file, object) of every finding one fault must produce: its own rule where the engine
    reports it (`reported_on`, else the fault's own object), then the `also` findings."""
    out = []
    if fault["rule"] != "runtime":
        for where in fault.get("reported_on") or [fault]:
            out.append((fault["rule"], where["file"], where["object"]))
    for extra in fault.get("also", []):
        out.append((extra["rule"], extra["file"], extra["object"]))
    return out


def expected_static() -> dict[tuple, str]:
    """finding key -> fault id, for every finding the documented faults must produce."""
    return {finding_key(*f): fault["id"] for fault in load_expected() for f in fault_findings(fault)}


def run_policy(*targets: Path) -> tuple[int, list[dict], str]:
    if not POLICY.exists():
        pytest.fail(f"{POLICY.relative_to(REPO)} does not exist: the policy engine is part of the k8s work "
                    "(notes/policy.md) and these tests consume it")
    proc = subprocess.run(
        [sys.executable, str(POLICY), "--json", *map(str, targets)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    findings = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue  # skip notes ("skipped ... because ...") if printed as text
        obj = json.loads(line)
        if "rule" in obj:
            findings.append(obj)
    return proc.returncode, findings, proc.stderr


_BROKEN_RESULT: tuple[int, list[dict], str] | None = None


def broken_findings() -> tuple[int, list[dict], str]:
    global _BROKEN_RESULT
    if _BROKEN_RESULT is None:
        _BROKEN_RESULT = run_policy(HERE)
    return _BROKEN_RESULT


def doc_sections() -> dict[str, str]:
    text = DOC.read_text()
    matches = list(FAULT_HEADING.finditer(text))
    sections = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        # a later "## " heading (not ###) also ends the section
        nxt = re.search(r"^## ", text[m.end():end], re.MULTILINE)
        if nxt:
            end = m.end() + nxt.start()
        sections[m.group(1)] = text[m.start():end]
    return sections


def manifest_objects() -> set[tuple[str, tuple[str, str, str]]]:
    objs = set()
    for path in sorted(HERE.glob("*.yaml")):
        if path.name == EXPECTED.name:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            meta = doc.get("metadata", {})
            objs.add((path.name, (doc["kind"], meta.get("namespace", ""), meta["name"])))
    return objs


# ---------------------------------------------------------------------------------------------
# the expected-findings file itself

def test_expected_findings_are_well_formed():
    faults = load_expected()
    ids = [f["id"] for f in faults]
    assert len(ids) == len(set(ids)), "duplicate fault ids"
    assert len(faults) >= 12, "the scenario promises at least 12 faults"
    assert len({f["file"] for f in faults}) >= 4, "faults must span at least 4 files"
    objects = manifest_objects()
    for fault in faults:
        assert re.fullmatch(r"[a-z][a-z0-9-]+", fault["id"]), fault["id"]
        assert fault["rule"] in KNOWN_RULES | {"runtime"}, f"{fault['id']}: unknown rule {fault['rule']}"
        for entry in [fault] + list(fault.get("also", [])) + list(fault.get("reported_on", [])):
            assert entry.get("rule", fault["rule"]) in KNOWN_RULES | {"runtime"}, \
                f"{fault['id']}: unknown rule {entry.get('rule')}"
            assert (HERE / entry["file"]).is_file(), f"{fault['id']}: no file {entry['file']}"
            assert (entry["file"], object_key(entry["object"])) in objects, \
                f"{fault['id']}: {entry['object']} is not an object of {entry['file']}"
        if fault["rule"] == "runtime":
            assert fault.get("demo"), f"{fault['id']}: a runtime fault needs a demo test"


def test_every_demo_test_exists():
    source = RUNTIME_TESTS.read_text()
    defined = set(re.findall(r"^def (test_\w+)\(", source, re.MULTILINE))
    for fault in load_expected():
        if fault.get("demo"):
            assert fault["demo"] in defined, f"{fault['id']}: {fault['demo']} missing from test_runtime.py"


# ---------------------------------------------------------------------------------------------
# policy engine vs. expected findings

def static_fault_params():
    params = []
    for fault in load_expected():
        if fault["rule"] == "runtime" and not fault.get("also"):
            continue
        marks = []
        if fault.get("engine_gap"):
            marks.append(pytest.mark.xfail(strict=True, reason="known policy engine gap: " + fault["engine_gap"]))
        params.append(pytest.param(fault, id=fault["id"], marks=marks))
    return params


@pytest.mark.parametrize("fault", static_fault_params())
def test_policy_reports_the_fault_under_its_own_rule(fault):
    rc, findings, stderr = broken_findings()
    got = {finding_key(f["rule"], f["file"], f["object"]) for f in findings}
    for rule, file, ref in fault_findings(fault):
        key = finding_key(rule, file, ref)
        same_object = sorted(f"{f['rule']}: {f['message']}" for f in findings
                             if object_key(f["object"]) == key[2])
        assert key in got, (
            f"{fault['id']}: policy did not report rule {rule} on {ref} ({file}).\n"
            f"Findings on that object: {same_object}\nstderr: {stderr[-2000:]}")
    assert rc == 1, "the policy must exit 1 when it reports findings"


def test_policy_reports_nothing_undocumented():
    _, findings, stderr = broken_findings()
    assert findings, f"the policy engine reported nothing on k8s/broken/ (stderr: {stderr[-2000:]})"
    expected = expected_static()
    undocumented = [f"{f['rule']} {f['file']} {f['object']}: {f['message']}" for f in findings
                    if finding_key(f["rule"], f["file"], f["object"]) not in expected]
    assert not undocumented, "findings no documented fault explains:\n" + "\n".join(undocumented)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rendered_manifests_are_clean(env):
    path = RENDERED / f"{env}.yaml"
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO)} not rendered yet (scripts/render-manifests writes it)")
    rc, findings, stderr = run_policy(path)
    assert findings == [], "the real render must pass every rule:\n" + "\n".join(
        f"{f['rule']} {f['object']}: {f['message']}" for f in findings)
    assert rc == 0, stderr


# ---------------------------------------------------------------------------------------------
# expected findings vs. the troubleshooting guide

def test_every_fault_has_a_doc_section_and_vice_versa():
    ids = {f["id"] for f in load_expected()}
    sections = doc_sections()
    assert ids - sections.keys() == set(), "faults without a '### <id> — ...' section in docs/troubleshooting.md"
    assert sections.keys() - ids == set(), "doc sections without an entry in expected-findings.yaml"


@pytest.mark.parametrize("fault", load_expected(), ids=lambda f: f["id"])
def test_doc_section_names_rule_file_and_fix(fault):
    section = doc_sections().get(fault["id"])
    if section is None:
        pytest.fail(f"no section for {fault['id']} in docs/troubleshooting.md")
    assert f"k8s/broken/{fault['file']}" in section, "the section must say where (file)"
    if fault["rule"] == "runtime":
        assert "Policy rule: none (runtime)" in section, "runtime faults say so"
        assert fault["demo"] in section, "and name their demonstration test"
    else:
        assert f"Policy rule: `{fault['rule']}`" in section, "static faults name the rule that reports them"
    for extra in fault.get("also", []):
        assert f"`{extra['rule']}`" in section, f"the section must explain the extra {extra['rule']} finding"
    assert "```diff" in section, "every fault comes with its fix as a diff"
