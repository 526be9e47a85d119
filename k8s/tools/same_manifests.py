#!/usr/bin/env python3
"""Compare two multi-document YAML files semantically.

Exit 0 when both hold the same set of objects (identified by apiVersion, kind, namespace,
name) with equal content (key order, formatting and comments ignored; document order ignored);
otherwise print what differs (missing/extra objects and a unified diff per changed object)
and exit 1.
Usage: same_manifests.py A.yaml B.yaml
"""
import difflib
import sys

import yaml


def _identity(obj):
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )


def load(path):
    """Map object identity -> object for every non-empty document of the file."""
    with open(path, encoding="utf-8") as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d is not None]
    objects = {}
    for doc in docs:
        if not isinstance(doc, dict):
            raise SystemExit(f"{path}: a document is not a mapping")
        key = _identity(doc)
        if key in objects:
            raise SystemExit(f"{path}: duplicate object {'/'.join(key)}")
        objects[key] = doc
    return objects


def _text(obj):
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=1 << 16).splitlines(keepends=True)


def compare(path_a, path_b, out=sys.stdout):
    """Return True when equal; print the differences to `out` otherwise."""
    a, b = load(path_a), load(path_b)
    same = True
    for key in sorted(set(a) | set(b)):
        label = "/".join(part for part in key if part)
        if key not in b:
            out.write(f"only in {path_a}: {label}\n")
            same = False
        elif key not in a:
            out.write(f"only in {path_b}: {label}\n")
            same = False
        elif a[key] != b[key]:
            same = False
            out.write(f"differs: {label}\n")
            out.writelines(difflib.unified_diff(_text(a[key]), _text(b[key]), f"{path_a}:{label}", f"{path_b}:{label}"))
    return same


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: same_manifests.py A.yaml B.yaml", file=sys.stderr)
        return 2
    return 0 if compare(args[0], args[1]) else 1


if __name__ == "__main__":
    sys.exit(main())
