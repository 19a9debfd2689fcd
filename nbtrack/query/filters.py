"""MLflow's filter syntax evaluated on cached runs (the compare panel's filter box).

The panel's filter box takes MLflow's syntax. Re-asking MLflow on every keystroke costs about a
second per 1,000 matching runs, so the common expressions (metrics, params, tags and run
attributes compared with =, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL, joined by AND) are
evaluated here on the cached runs with MLflow's own semantics (a run without the key never
matches, LIKE is case-sensitive); anything else is sent to MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbtrack.query.cache import DEFAULT_ORDER, RunCache, join_filters
from nbtrack.query.rows import Record

# -- MLflow's filter syntax, on cached runs ----------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<num>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)(?![\w.])
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<ident>(?:`[^`]+`|[A-Za-z_]\w*)(?:\.(?:`[^`]+`|"[^"]+"|[\w.]+))?)
    )""",
    re.VERBOSE,
)
_KINDS = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attr",
    "attributes": "attr",
    "attr": "attr",
    "run": "attr",
}
_STRING_ATTRS = {"status": "status", "run_name": "name", "run name": "name", "run_id": "run_id"}
_STRING_ATTRS.update({"Run name": "name", "Run Name": "name", "user_id": "user"})
_NUMERIC_ATTRS = {"start_time": "start_ms", "created": "start_ms", "Created": "start_ms"}
_NUMERIC_ATTRS["end_time"] = "end_ms"
_NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE"}


class NotLocal(Exception):
    """The expression is not one the local evaluator handles: ask MLflow."""


@dataclass(frozen=True)
class Clause:
    kind: str  # metric, param, tag, attr
    key: str
    op: str
    value: Any

    def matches(self, r: Record) -> bool:
        if self.kind == "metric":
            v = r.metrics.get(self.key)
            return v is not None and _compare(float(v), self.op, self.value)
        if self.kind in ("param", "tag"):
            v = (r.params if self.kind == "param" else r.tags).get(self.key)
            if self.op == "IS NULL":
                return v is None
            if self.op == "IS NOT NULL":
                return v is not None
            return v is not None and _compare(v, self.op, self.value)
        v = getattr(r, self.key)
        if v is None:
            return False
        if self.op == "IN":
            return v in self.value
        if self.op == "NOT IN":
            return v not in self.value
        return _compare(v, self.op, self.value)


def _compare(v: Any, op: str, target: Any) -> bool:
    if op == "=":
        return v == target
    if op == "!=":
        return v != target
    if op == "<":
        return v < target
    if op == "<=":
        return v <= target
    if op == ">":
        return v > target
    if op == ">=":
        return v >= target
    if op in ("LIKE", "ILIKE"):
        return target.match(v) is not None
    raise NotLocal(op)


def _like(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # SQL LIKE: % any run of characters, _ one character; anchored at both ends.
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(regex + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`'\"":
        return text[1:-1]
    return text


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise NotLocal(text[pos:])
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_filter(text: str) -> list[Clause]:
    """The clauses of an MLflow filter string (joined by AND), or NotLocal when it uses anything
    the local evaluator does not handle (datasets, artifact_uri, OR, odd quoting...)."""
    toks = _tokens(text or "")
    clauses: list[Clause] = []
    i = 0

    def word(j: int) -> str:
        return toks[j][1].upper() if j < len(toks) and toks[j][0] == "ident" else ""

    while i < len(toks):
        if toks[i][0] != "ident":
            raise NotLocal(toks[i][1])
        head, dot, rest = toks[i][1].partition(".")
        if dot:
            kind = _KINDS.get(_unquote(head))
            key = _unquote(rest)
        else:
            kind, key = "attr", _unquote(head)
        if kind is None:
            raise NotLocal(head)
        i += 1
        # the comparator
        if toks[i][0] == "op" if i < len(toks) else False:
            op = "!=" if toks[i][1] == "<>" else toks[i][1]
            i += 1
        elif word(i) in ("LIKE", "ILIKE", "IN"):
            op = word(i)
            i += 1
        elif word(i) == "NOT" and word(i + 1) == "IN":
            op, i = "NOT IN", i + 2
        elif word(i) == "IS" and word(i + 1) == "NULL":
            op, i = "IS NULL", i + 2
        elif word(i) == "IS" and word(i + 1) == "NOT" and word(i + 2) == "NULL":
            op, i = "IS NOT NULL", i + 3
        else:
            raise NotLocal(text)
        value: Any = None
        if op not in ("IS NULL", "IS NOT NULL"):
            if op in ("IN", "NOT IN"):
                value, i = _list(toks, i)
            else:
                if i >= len(toks):
                    raise NotLocal(text)
                value = toks[i]
                i += 1
        clauses.append(_clause(kind, key, op, value))
        if i < len(toks):
            if word(i) != "AND":
                raise NotLocal(text)
            i += 1
            if i >= len(toks):
                raise NotLocal(text)
    return clauses


def _list(toks: list[tuple[str, str]], i: int) -> tuple[tuple[str, ...], int]:
    if i >= len(toks) or toks[i] != ("punct", "("):
        raise NotLocal("(")
    items: list[str] = []
    i += 1
    while i < len(toks):
        kind, text = toks[i]
        if kind != "str":
            raise NotLocal(text)
        items.append(_string(text))
        i += 1
        if i < len(toks) and toks[i] == ("punct", ","):
            i += 1
            continue
        if i < len(toks) and toks[i] == ("punct", ")"):
            return tuple(items), i + 1
        break
    raise NotLocal(")")


def _string(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _clause(kind: str, key: str, op: str, token: Any) -> Clause:
    if kind == "metric":
        if op not in _NUMERIC_OPS or token[0] != "num":
            raise NotLocal(op)
        return Clause(kind, key, op, float(token[1]))
    if kind in ("param", "tag"):
        if op in ("IS NULL", "IS NOT NULL"):
            return Clause(kind, key, op, None)
        if op not in _STRING_OPS or token[0] != "str":
            raise NotLocal(op)
        return Clause(kind, key, op, _value(op, _string(token[1])))
    if key in _NUMERIC_ATTRS:
        if op not in _NUMERIC_OPS or token[0] != "num":
            raise NotLocal(op)
        number = float(token[1])
        return Clause(kind, _NUMERIC_ATTRS[key], op, number)
    if key in _STRING_ATTRS:
        field_name = _STRING_ATTRS[key]
        if op in ("IN", "NOT IN"):
            if key != "run_id":  # MLflow lists only run ids
                raise NotLocal(op)
            return Clause(kind, field_name, op, frozenset(token))
        if op not in _STRING_OPS or token[0] != "str":
            raise NotLocal(op)
        return Clause(kind, field_name, op, _value(op, _string(token[1])))
    raise NotLocal(key)


def _value(op: str, text: str) -> Any:
    if op in ("LIKE", "ILIKE"):
        return _like(text, op == "ILIKE")
    return text


def matching(
    cache: RunCache, expression: str, run_ids: Sequence[str] | None = None
) -> set[str] | None:
    """Ids of the cached runs that match an MLflow filter expression; None for no expression.

    Evaluated locally when it can be; otherwise MLflow is asked (the query's own filter and the
    expression together) and its answer is intersected with the cache."""
    expression = (expression or "").strip()
    if not expression:
        return None
    records = cache.records()
    if run_ids is not None:
        wanted = set(run_ids)
        records = [r for r in records if r.run_id in wanted]
    try:
        clauses = parse_filter(expression)
        return {r.run_id for r in records if all(c.matches(r) for c in clauses)}
    except (NotLocal, TypeError, ValueError):
        pass
    from nbtrack import store

    q = cache.query
    found: set[str] = set()
    token = None
    while True:
        runs, token = store.search_runs_page(
            q.experiment_ids,
            join_filters(q.filter, expression),
            DEFAULT_ORDER,
            store.SEARCH_PAGE,
            token,
        )
        found.update(r.run_id for r in runs)
        if token is None:
            break
    return found & {r.run_id for r in records}
