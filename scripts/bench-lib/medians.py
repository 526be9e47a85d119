#!/usr/bin/env python3
"""One row per measurement from scripts/bench's raw results, for the report.

A scenario measured several times (same scenario, via, users and note) becomes the run with
the median requests/s, every column of that run kept together so p99, RSS and CPU/request
describe the same run as the rate. Two columns are added: how many runs there were and the
range of their requests/s, so the report shows how far single runs of that row spread.
Rows keep the order in which they were first measured.

Usage: medians.py RAW_TSV > SUMMARY_TSV
"""

import csv
import sys


def main(path: str) -> None:
    with open(path, newline="") as raw:
        rows = list(csv.DictReader(raw, delimiter="\t"))
    if not rows:
        raise SystemExit(f"medians.py: no results in {path}")
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        key = (row["scenario"], row["via"], row["users"], row["note"])
        groups.setdefault(key, []).append(row)

    fields = [*rows[0].keys(), "runs", "rps_range"]
    out = csv.DictWriter(sys.stdout, fieldnames=fields, delimiter="\t", lineterminator="\n")
    out.writeheader()
    for runs in groups.values():
        by_rate = sorted(runs, key=lambda r: float(r["rps"]))
        # The lower of the two middle runs when there is an even number: never flattering.
        median = by_rate[(len(by_rate) - 1) // 2]
        rates = [float(r["rps"]) for r in by_rate]
        spread = f"{rates[0]:.0f}-{rates[-1]:.0f}" if len(runs) > 1 else ""
        out.writerow({**median, "runs": str(len(runs)), "rps_range": spread})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
