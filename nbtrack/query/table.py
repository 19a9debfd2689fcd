"""Runs as a table: fetched from MLflow page by page, cached per query, refreshed incrementally;
and MLflow's filter syntax evaluated on the cached runs.

(Not ``nbtrack/runs.py``: the submodule would replace the public function ``nbtrack.runs``.)

Everything comes through ``nbtrack.store`` (MLflow's public search API), so it works the same
against the embedded SQLite store and a tracking server.

**Incremental refresh.** MLflow's search API has no "updated since": a run has a start time, an
end time and a status, and nothing records when its tags or metrics last changed. A refresh asks
for two things only:

1. runs started since the last fetch: ``attributes.start_time >= T - WINDOW``, where T is the
   earlier of the newest start time seen and the local clock at the last fetch (a client with a
   skewed clock, or a run created while the last fetch ran, still lands in the window);
2. the runs that were RUNNING at the last fetch, by id (``attributes.run_id IN (...)``): they are
   the ones whose metrics, tags and status can still change. One that no longer comes back was
   deleted (or no longer matches the filter) and leaves the table.

What it does not see, until a full reload (``refresh(full=True)``, the panel's "reload"): a run
changed after it had finished (a tag set or a metric logged on a finished run, a rename), a run
deleted or restored after it had finished, and a run whose start time lies more than WINDOW
before the last fetch (imported runs, clocks skewed by more than that).

**Local filter.** The panel's filter box takes MLflow's syntax. Re-asking MLflow on every
keystroke costs about a second per 1,000 matching runs, so the common expressions (metrics,
params, tags and run attributes compared with =, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL,
joined by AND) are evaluated here on the cached runs with MLflow's own semantics (a run without
the key never matches, LIKE is case-sensitive); anything else is sent to MLflow.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from nbtrack import record as _record
from nbtrack.errors import UsageError
from nbtrack.record import TAG_RUN_NAME, RunView

WINDOW_MS = 120_000  # how far back a refresh looks for new runs (see the module's docstring)
ID_CHUNK = 100  # run ids per `attributes.run_id IN (...)` query
DEFAULT_ORDER = ("attributes.start_time DESC",)
INFO_COLUMNS = (
    "run_id",
    "name",
    "experiment",
    "status",
    "start_time",
    "duration",
    "user",
    "notebook",
    "git_commit",
    "data_hash",
)


# -- one run, flattened ------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What the table keeps of a run: its info, params, latest metrics and tags."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    user: str
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def git_commit(self) -> str:
        """Short commit, ``*`` when the work tree was dirty: ``1a2b3c4*``."""
        commit = _record.commit_of(self.tags, self.params) or ""
        if not commit:
            return ""
        return commit[:7] + ("*" if self.tags.get(_record.TAG_GIT_DIRTY) == "true" else "")

    @property
    def data_hash(self) -> str:
        return (self.params.get("data_hash") or "")[:10]

    @property
    def notebook(self) -> str:
        source = self.tags.get("mlflow.source.name") or ""
        return PurePath(source).name if source else ""


def record_of(run: RunView) -> Record:
    """A Record of a run the store returned."""
    info = data = run
    tags = dict(data.tags)
    return Record(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        name=info.name or tags.get(TAG_RUN_NAME) or info.run_id[:8],
        status=info.status,
        start_ms=info.start_time,
        end_ms=info.end_time,
        user=info.user_id or tags.get("mlflow.user", ""),
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=tags,
    )


def frame_of(records: Sequence[Record], experiments: Mapping[str, str] | None = None):
    """The runs table: one row per run, INFO_COLUMNS then ``params.<key>`` (strings, as MLflow
    keeps them) and ``metrics.<key>`` (last value), each group sorted by key.

    ``experiments`` (id -> name) names the experiment column; without it the column is dropped.
    """
    import numpy as np
    import pandas as pd

    n = len(records)
    start = np.array([r.start_ms if r.start_ms is not None else np.nan for r in records], float)
    end = np.array([r.end_ms if r.end_ms is not None else np.nan for r in records], float)
    cols: dict[str, Any] = {
        "run_id": [r.run_id for r in records],
        "name": [r.name for r in records],
        "experiment": [(experiments or {}).get(r.experiment_id, r.experiment_id) for r in records],
        "status": [r.status for r in records],
        "start_time": pd.to_datetime(start, unit="ms", utc=True),
        "duration": (end - start) / 1000.0,  # seconds; NaN while running
        "user": [r.user for r in records],
        "notebook": [r.notebook for r in records],
        "git_commit": [r.git_commit for r in records],
        "data_hash": [r.data_hash for r in records],
    }
    if not experiments:
        del cols["experiment"]
    param_keys = sorted({k for r in records for k in r.params})
    metric_keys = sorted({k for r in records for k in r.metrics})
    for k in param_keys:
        cols[f"params.{k}"] = pd.array([r.params.get(k) for r in records], dtype=object)
    for k in metric_keys:
        cols[f"metrics.{k}"] = np.array([r.metrics.get(k, np.nan) for r in records], float)
    return pd.DataFrame(cols, index=pd.RangeIndex(n))


# -- which runs: the query and its cache -------------------------------------------------------


@dataclass(frozen=True)
class RunQuery:
    """The runs asked for: experiments, an MLflow filter, an order and a cap."""

    experiment_ids: tuple[str, ...]
    filter: str = ""
    order_by: tuple[str, ...] = ()
    max_runs: int | None = None

    @property
    def server_order(self) -> tuple[str, ...]:
        return self.order_by or DEFAULT_ORDER

    @property
    def incremental(self) -> bool:
        """A capped query ordered by anything but start time cannot be topped up: the runs that
        enter its top N may be any runs."""
        if self.max_runs is None:
            return True
        first = self.server_order[0].lower().split()
        return first[0] in ("attributes.start_time", "start_time", "attribute.start_time") and (
            len(first) > 1 and first[1] == "desc"
        )


def _join(*clauses: str) -> str:
    return " and ".join(c for c in (c.strip() for c in clauses) if c)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RunCache:
    """The runs of one query, kept in memory and brought up to date on demand.

    Thread-safe: the panel loads in a background thread while the notebook reads ``frame()``.
    """

    def __init__(self, query: RunQuery, experiments: Mapping[str, str] | None = None):
        self.query = query
        self.experiments = dict(experiments or {})  # id -> name, for the experiment column
        self._lock = threading.RLock()
        self._fetch_lock = threading.Lock()  # one fetch at a time
        self._records: dict[str, Record] = {}
        self._running: set[str] = set()
        self._newest: int | None = None  # newest start time seen (ms)
        self._fetched_at: int | None = None  # local clock (ms) when the last fetch began
        self._version = 0
        self._frame: tuple[int, Any] | None = None
        self.complete = False  # a full load has finished
        self.last: dict[str, Any] = {}  # what the last fetch did: kind, runs, requests, seconds

    # -- reading ---------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Bumped whenever the cached runs change."""
        return self._version

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records.values())

    def record(self, run_id: str) -> Record | None:
        return self._records.get(run_id)

    def frame(self):
        """The table of the cached runs, newest first (rebuilt only when they changed)."""
        with self._lock:
            cached = self._frame
            if cached is not None and cached[0] == self._version:
                return cached[1]
            version = self._version
            records = sorted(self._records.values(), key=lambda r: (-(r.start_ms or 0), r.run_id))
        multi = len(self.query.experiment_ids) > 1
        df = frame_of(records, self.experiments if multi else None)
        with self._lock:
            self._frame = (version, df)
        return df

    # -- fetching --------------------------------------------------------------------------------

    def pages(self, page_size: int | None = None) -> Iterator[int]:
        """A full load, yielding the number of runs fetched so far after each page.

        The runs of each page are visible (``frame()``) as soon as it is yielded; runs that
        MLflow no longer returns leave the cache at the end."""
        from nbtrack import store

        size = page_size or store.SEARCH_PAGE
        cap = self.query.max_runs
        with self._fetch_lock:
            began, t0 = _now_ms(), time.perf_counter()
            seen: set[str] = set()
            token, requests = None, 0
            while True:
                want = size if cap is None else min(size, cap - len(seen))
                if want <= 0:
                    break
                runs, token = store.search_runs_page(
                    self.query.experiment_ids,
                    self.query.filter,
                    self.query.server_order,
                    want,
                    token,
                )
                requests += 1
                records = [record_of(r) for r in runs]
                seen.update(r.run_id for r in records)
                self._upsert(records)
                yield len(seen)
                if token is None:
                    break
            with self._lock:
                gone = set(self._records) - seen
                for run_id in gone:
                    del self._records[run_id]
                if gone:
                    self._version += 1
                self._fetched_at = began
                self.complete = True
            self.last = {
                "kind": "full",
                "runs": len(seen),
                "requests": requests,
                "seconds": time.perf_counter() - t0,
            }

    def load(self, page_size: int | None = None) -> RunCache:
        """Fetch every run of the query (a full reload when the cache holds some already)."""
        for _ in self.pages(page_size):
            pass
        return self

    def refresh(self, full: bool = False) -> int:
        """Bring the cache up to date; returns how many runs changed, arrived or left.

        Incremental unless ``full``, the first time, or for a query that cannot be topped up
        (see RunQuery.incremental)."""
        if full or not self.complete or not self.query.incremental:
            before = self._version
            self.load()
            return len(self._records) if self._version != before else 0
        from nbtrack import store

        with self._fetch_lock:
            began, t0 = _now_ms(), time.perf_counter()
            since = min(self._newest or began, self._fetched_at or began) - WINDOW_MS
            q = self.query
            fresh: list[Record] = []
            token, requests = None, 0
            while True:
                runs, token = store.search_runs_page(
                    q.experiment_ids,
                    _join(q.filter, f"attributes.start_time >= {since}"),
                    DEFAULT_ORDER,
                    store.SEARCH_PAGE,
                    token,
                )
                requests += 1
                fresh += [record_of(r) for r in runs]
                if token is None:
                    break
            got = {r.run_id for r in fresh}
            running = sorted(self._running - got)
            gone: list[str] = []
            for i in range(0, len(running), ID_CHUNK):
                chunk = running[i : i + ID_CHUNK]
                ids = ", ".join(_quote(x) for x in chunk)
                runs, _ = store.search_runs_page(
                    q.experiment_ids,
                    _join(q.filter, f"attributes.run_id IN ({ids})"),
                    DEFAULT_ORDER,
                    len(chunk),
                )
                requests += 1
                back = [record_of(r) for r in runs]
                fresh += back
                gone += sorted(set(chunk) - {r.run_id for r in back})
            changed = self._upsert(fresh, remove=gone, trim=True)
            with self._lock:
                self._fetched_at = began
            self.last = {
                "kind": "incremental",
                "runs": len(fresh),
                "requests": requests,
                "changed": changed,
                "seconds": time.perf_counter() - t0,
            }
            return changed

    def _upsert(
        self, records: Iterable[Record], remove: Iterable[str] = (), trim: bool = False
    ) -> int:
        changed = 0
        with self._lock:
            for run_id in remove:
                if self._records.pop(run_id, None) is not None:
                    changed += 1
                self._running.discard(run_id)
            for r in records:
                if self._records.get(r.run_id) != r:
                    self._records[r.run_id] = r
                    changed += 1
                if r.status == "RUNNING":
                    self._running.add(r.run_id)
                else:
                    self._running.discard(r.run_id)
                if r.start_ms is not None and (self._newest is None or r.start_ms > self._newest):
                    self._newest = r.start_ms
            cap = self.query.max_runs
            if trim and cap is not None and len(self._records) > cap:
                # Only the default order is topped up incrementally: keep the newest.
                keep = sorted(self._records.values(), key=lambda r: -(r.start_ms or 0))[:cap]
                changed += len(self._records) - cap
                self._records = {r.run_id: r for r in keep}
                self._running &= set(self._records)
            if changed:
                self._version += 1
        return changed


def _now_ms() -> int:
    return int(time.time() * 1000)


# Caches live as long as the kernel: a second nbtrack.runs()/compare() of the same query only
# asks MLflow what changed.
_caches: dict[tuple, RunCache] = {}
_caches_lock = threading.Lock()


def cache_for(query: RunQuery, experiments: Mapping[str, str] | None = None) -> RunCache:
    from nbtrack import store

    key = (store.tracking_uri(), query)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = RunCache(query, experiments)
        return cache


def clear_caches() -> None:
    with _caches_lock:
        _caches.clear()


# -- from the user's arguments to a query ------------------------------------------------------


def default_experiment() -> str:
    """The experiment a ``%%track`` cell here would write to: %track_config's, NBTRACK_EXPERIMENT,
    MLFLOW_EXPERIMENT_NAME, else the notebook's name."""
    import sys

    from nbtrack import settings

    configured = settings.session_defaults().get("experiment")
    if configured:
        return configured
    s = settings.current()
    if s.experiment:
        return s.experiment
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from nbtrack.capture.notebook import notebook_path

        path = notebook_path(getattr(shell, "user_ns", {}) or {})
        if path:
            return PurePath(path).stem
    raise UsageError("no experiment given", 'name one: nbtrack.compare("digits")')


def query_for(
    experiment: str | Sequence[str] | None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
) -> tuple[RunQuery, dict[str, str]]:
    """The query and its experiments (id -> name) for the public functions' arguments."""
    from nbtrack import store

    store.configure()
    if experiment is None:
        names = [default_experiment()]
    elif isinstance(experiment, str):
        names = [experiment]
    else:
        names = list(experiment)
    if max_runs is not None and max_runs < 1:
        raise UsageError(f"max_runs must be at least 1, got {max_runs}", "e.g. max_runs=1000")
    ids = store.experiment_ids_by_name(names)
    order = (order_by,) if isinstance(order_by, str) else tuple(order_by or ())
    query = RunQuery(
        experiment_ids=tuple(ids.values()),
        filter=(filter or "").strip(),
        # The order only changes which runs are fetched when they are capped.
        order_by=order if max_runs is not None else (),
        max_runs=max_runs,
    )
    return query, {v: k for k, v in ids.items()}


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
            q.experiment_ids, _join(q.filter, expression), DEFAULT_ORDER, store.SEARCH_PAGE, token
        )
        found.update(r.run_id for r in runs)
        if token is None:
            break
    return found & {r.run_id for r in records}


# -- the public entry point --------------------------------------------------------------------


def runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    full: bool = False,
    on_page: Callable[[int], None] | None = None,
):
    """The runs table of ``nbtrack.runs`` (see there), from the kernel's cache, refreshed."""
    from nbtrack.query import compare

    query, names = query_for(experiment, filter, order_by, max_runs)
    cache = cache_for(query, names)
    if not cache.complete:
        for n in cache.pages():
            if on_page is not None:
                on_page(n)
    else:
        cache.refresh(full=full)
    return compare.sort_frame(cache.frame(), compare.parse_order(order_by)).reset_index(drop=True)
