#!/usr/bin/env python3
"""JSON list of Kubernetes objects on stdin -> deterministic multi-document YAML on stdout.

Keys are sorted, multi-line strings use the literal block style, nothing is folded, so
the same input always gives the same bytes (the golden renders in k8s/rendered/ rely on it).
Usage: yamlify.py [--header TEXT] < objects.json > objects.yaml
"""
import argparse
import json
import sys

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that never emits aliases and writes multi-line strings as blocks."""

    def ignore_aliases(self, data):  # noqa: D401 - PyYAML API
        return True


def _str_representer(dumper, value):
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_documents(objects):
    """Return the YAML text of a list of objects, one document each."""
    return yaml.dump_all(
        objects,
        Dumper=_Dumper,
        explicit_start=True,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 16,
        indent=2,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--header", default=None, help="comment line(s) written before the first document")
    args = parser.parse_args(argv)
    objects = json.load(sys.stdin)
    if not isinstance(objects, list):
        print("yamlify: expected a JSON list of objects", file=sys.stderr)
        return 2
    out = sys.stdout
    if args.header:
        for line in args.header.splitlines():
            out.write(f"# {line}\n" if line else "#\n")
    out.write(dump_documents(objects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
