#!/usr/bin/env python3
"""Metric names referenced by PromQL expressions.

A small PromQL tokenizer (not a regex over the raw text): string literals, label matchers,
range/subquery brackets, durations, numbers, function and aggregation names, grouping label
lists (by/without/on/ignoring/group_left/group_right), keywords and Grafana variables are all
recognised and skipped, so what remains are the metric names of the vector selectors.

    python3 monitoring/tools/promql_names.py 'sum by (job) (rate(http_requests_total{job="x"}[5m]))'
"""
import re
import sys
from dataclasses import dataclass, field

KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}

TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@:])
    """,
    re.VERBOSE,
)


class PromQLSyntaxError(ValueError):
    pass


@dataclass
class Selector:
    """A vector selector: metric name and its equality label matchers."""
    name: str
    equal: dict = field(default_factory=dict)


def tokenize(expr):
    pos = 0
    out = []
    while pos < len(expr):
        m = TOKEN_RE.match(expr, pos)
        if not m:
            raise PromQLSyntaxError(f"unexpected character {expr[pos]!r} at {pos} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def _unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def _matchers(tokens, i):
    """Parse `{...}` starting at tokens[i] == '{'; return (index after '}', {label: value} for =)."""
    assert tokens[i][1] == "{"
    i += 1
    equal = {}
    while True:
        if i >= len(tokens):
            raise PromQLSyntaxError("unterminated label matcher list")
        kind, text = tokens[i]
        if text == "}":
            return i + 1, equal
        if text == ",":
            i += 1
            continue
        if kind not in ("ident", "string") or i + 2 >= len(tokens):
            raise PromQLSyntaxError(f"bad label matcher at {text!r}")
        label = text if kind == "ident" else _unquote(text)
        op, (vkind, value) = tokens[i + 1][1], tokens[i + 2]
        if op not in ("=", "!=", "=~", "!~") or vkind not in ("string", "var"):
            raise PromQLSyntaxError(f"bad label matcher {label}{op}{value}")
        if op == "=" and vkind == "string":
            equal[label] = _unquote(value)
        i += 3


def _skip_balanced(tokens, i, open_, close):
    depth = 0
    while i < len(tokens):
        t = tokens[i][1]
        if t == open_:
            depth += 1
        elif t == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PromQLSyntaxError(f"unbalanced {open_}{close}")


def selectors(expr):
    """All vector selectors of a PromQL expression, in order."""
    tokens = tokenize(expr)
    found = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if text == "[":
            i = _skip_balanced(tokens, i, "[", "]")          # range, subquery, durations
        elif text == "{":                                     # selector without a metric name
            i, equal = _matchers(tokens, i)
            if "__name__" in equal:
                name = equal.pop("__name__")
                found.append(Selector(name, equal))
        elif kind == "ident" and text.lower() in GROUPING:
            i += 1
            if i < len(tokens) and tokens[i][1] == "(":
                i = _skip_balanced(tokens, i, "(", ")")      # label list, not metrics
        elif kind == "ident" and text.lower() == "offset":
            i += 1
            if i < len(tokens) and tokens[i][1] == "-":
                i += 1
            i += 1                                            # the duration
        elif kind == "ident" and text.lower() in KEYWORDS:
            i += 1
        elif kind == "ident" and (nxt == "(" or (text.lower() in AGGREGATIONS and (nxt or "").lower() in GROUPING)):
            i += 1                                            # function or aggregation
        elif kind == "ident":
            i += 1
            equal = {}
            if i < len(tokens) and tokens[i][1] == "{":
                i, equal = _matchers(tokens, i)
            found.append(Selector(text, equal))
        else:
            i += 1
    return found


def metric_names(expr):
    return sorted({s.name for s in selectors(expr)})


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        for s in selectors(arg):
            print(s.name, s.equal)
