#!/usr/bin/env python3
"""Static checks of the monitoring sources (no Prometheus needed).

  - every alert has severity page|ticket|warning, a summary, a description and a runbook_url
    pointing at a heading of docs/runbook.md (anchor as GitHub slugifies it);
  - every alert is covered by the promtool tests: firing with severity and all three annotations,
    and silent one evaluation interval before, in the same test;
  - every alert appears in docs/monitoring.md's alert table;
  - every selector of every rule is scoped to one namespace (an equality matcher on `namespace`,
    or on `exported_namespace` for ingress-nginx's series), so another namespace's job,
    container or HPA of the same name can neither fire an alert nor mask an absent();
  - the dashboard: every selector scoped to the `namespace` template variable, unique panel ids, no overlapping panels, every query on the ${datasource}
    template variable.

Usage: check_static.py RULES_YML DASHBOARD_JSON TESTS_DIR RUNBOOK_MD MONITORING_MD
"""
import json
import re
import sys
import unicodedata
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql_names import selectors  # noqa: E402

RUNBOOK_PREFIX = "https://github.com/users-platform/users-platform/blob/main/docs/runbook.md#"
SEVERITIES = {"page", "ticket", "warning"}
ANNOTATIONS = {"summary", "description", "runbook_url"}
DURATION_RE = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

errors = []


def error(msg):
    errors.append(msg)


def seconds(duration):
    duration = str(duration)
    parts = DURATION_RE.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"bad duration {duration!r}")
    return sum(int(n) * UNIT_SECONDS[u] for n, u in parts)


def github_anchors(markdown):
    """Anchors GitHub generates for the headings of a markdown file."""
    anchors, seen = set(), {}
    in_fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if in_fence or not m:
            continue
        text = re.sub(r"`([^`]*)`", r"\1", m.group(2))
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        slug = "".join(c for c in text.lower()
                       if c in " -_" or unicodedata.category(c)[0] in "LN").replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def check_alerts(rules, runbook_md):
    anchors = github_anchors(runbook_md)
    alerts = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            name = rule["alert"]
            alerts[name] = rule
            labels, ann = rule.get("labels", {}), rule.get("annotations", {})
            if labels.get("severity") not in SEVERITIES:
                error(f"{name}: severity {labels.get('severity')!r} is not one of {sorted(SEVERITIES)}")
            for key in sorted(ANNOTATIONS - set(ann)):
                error(f"{name}: annotation {key} missing")
            url = ann.get("runbook_url", "")
            if not url.startswith(RUNBOOK_PREFIX):
                error(f"{name}: runbook_url {url!r} does not start with {RUNBOOK_PREFIX}")
            elif url[len(RUNBOOK_PREFIX):] not in anchors:
                error(f"{name}: runbook_url anchor #{url[len(RUNBOOK_PREFIX):]} is not a heading of docs/runbook.md")
    return alerts


SCOPE_LABELS = ("namespace", "exported_namespace")


def check_scoped(rules):
    scopes = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            for sel in selectors(rule["expr"]):
                scope = [sel.equal[k] for k in SCOPE_LABELS if sel.equal.get(k)]
                if not scope:
                    error(f"{name}: selector {sel.name} is not scoped to a namespace ({' or '.join(SCOPE_LABELS)}=\"...\")")
                scopes.update(scope)
    if len(scopes) > 1:
        error(f"rules are scoped to several namespaces: {sorted(scopes)}")


def check_tests(alerts, tests_dir):
    firing, silent_before = {}, {}
    for path in sorted(tests_dir.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        interval = seconds(doc.get("evaluation_interval", "1m"))
        for n, test in enumerate(doc.get("tests", [])):
            cases = test.get("alert_rule_test", []) or []
            silent = {(c["alertname"], seconds(c["eval_time"])) for c in cases if not c.get("exp_alerts")}
            for case in cases:
                name, exp = case["alertname"], case.get("exp_alerts") or []
                if not exp:
                    continue
                where = f"{path.name} test {n + 1}, {name} at {case['eval_time']}"
                for alert in exp:
                    if alert.get("exp_labels", {}).get("severity") != alerts.get(name, {}).get("labels", {}).get("severity"):
                        error(f"{where}: exp_labels lack the alert's severity")
                    if set(alert.get("exp_annotations", {})) != ANNOTATIONS:
                        error(f"{where}: exp_annotations must give exactly {sorted(ANNOTATIONS)}")
                firing.setdefault(name, []).append(where)
                if (name, seconds(case["eval_time"]) - interval) in silent:
                    silent_before.setdefault(name, []).append(where)
    for name in sorted(alerts):
        if name not in firing:
            error(f"{name}: no promtool test expects it to fire")
        elif name not in silent_before:
            error(f"{name}: no promtool test expects it silent one evaluation interval before it fires")
    for name in sorted(set(firing) - set(alerts)):
        error(f"promtool tests expect an alert {name} that rules.yml does not define")


def check_docs(alerts, monitoring_md):
    for name in sorted(alerts):
        if f"`{name}`" not in monitoring_md and f"[{name}]" not in monitoring_md:
            error(f"{name}: not in the alert table of docs/monitoring.md")


def check_dashboard(dashboard):
    ids, cells = set(), {}
    names = [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]
    if "datasource" not in names:
        error("dashboard: no `datasource` template variable")
    if "namespace" not in names:
        error("dashboard: no `namespace` template variable")
    for panel in dashboard["panels"]:
        pid, title = panel["id"], panel.get("title")
        if pid in ids:
            error(f"dashboard: duplicate panel id {pid}")
        ids.add(pid)
        g = panel["gridPos"]
        if g["x"] + g["w"] > 24:
            error(f"dashboard: panel {title!r} is wider than the grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    error(f"dashboard: panels {cells[(x, y)]!r} and {title!r} overlap")
                    break
                cells[(x, y)] = title
        if panel["type"] == "row":
            continue
        if not panel.get("targets"):
            error(f"dashboard: panel {title!r} has no query")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") != "${datasource}":
                error(f"dashboard: a query of {title!r} does not use the ${{datasource}} variable")
            for sel in selectors(target.get("expr", "").replace("$__rate_interval", "1m")):
                if sel.equal.get("namespace") != "$namespace":
                    error(f"dashboard: selector {sel.name} in {title!r} is not scoped to namespace=\"$namespace\"")


def main():
    rules_yml, dashboard_json, tests_dir, runbook_md, monitoring_md = sys.argv[1:6]
    rules = yaml.safe_load(Path(rules_yml).read_text())
    alerts = check_alerts(rules, Path(runbook_md).read_text())
    check_scoped(rules)
    check_tests(alerts, Path(tests_dir))
    check_docs(alerts, Path(monitoring_md).read_text())
    check_dashboard(json.loads(Path(dashboard_json).read_text()))
    for e in errors:
        print(f"check_static: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check_static: {len(alerts)} alerts with runbook sections, tests and docs; every selector "
          "scoped to the namespace; dashboard ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
