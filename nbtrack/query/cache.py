"""The runs of one query, kept in memory and refreshed incrementally (RunQuery, RunCache).

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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nbtrack.query.rows import Record, frame_of, record_of
from nbtrack.record import reproduction_byproduct

WINDOW_MS = 120_000  # how far back a refresh looks for new runs (see the module's docstring)
ID_CHUNK = 100  # run ids per `attributes.run_id IN (...)` query
DEFAULT_ORDER = ("attributes.start_time DESC",)


# -- which runs: the query and its cache -------------------------------------------------------


@dataclass(frozen=True)
class RunQuery:
    """The runs asked for: experiments, an MLflow filter, an order and a cap."""

    experiment_ids: tuple[str, ...]
    filter: str = ""
    order_by: tuple[str, ...] = ()
    max_runs: int | None = None
    # Runs of earlier tracked cells that a reproduction re-executed (record.reproduction_byproduct)
    # are left out unless asked for; the re-run that carries the verdict is always in.
    include_repro_byproducts: bool = False

    @property
    def server_order(self) -> tuple[str, ...]:
        return self.order_by or DEFAULT_ORDER

    def wants(self, record: Record) -> bool:
        """Whether a run the store returned belongs in the table."""
        return self.include_repro_byproducts or not reproduction_byproduct(record.tags)

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


def join_filters(*clauses: str) -> str:
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
                records = [r for r in map(record_of, runs) if self.query.wants(r)]
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
                    join_filters(q.filter, f"attributes.start_time >= {since}"),
                    DEFAULT_ORDER,
                    store.SEARCH_PAGE,
                    token,
                )
                requests += 1
                fresh += [r for r in map(record_of, runs) if q.wants(r)]
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
                    join_filters(q.filter, f"attributes.run_id IN ({ids})"),
                    DEFAULT_ORDER,
                    len(chunk),
                )
                requests += 1
                back = [r for r in map(record_of, runs) if q.wants(r)]
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
