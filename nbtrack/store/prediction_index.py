"""The prediction index: prediction id -> (inference run, part file, row), for lookup, not scans.

MLflow has no way to find one row among the Parquet files of a hundred runs short of reading them
all, so nbtrack keeps an index beside its metric log, in one SQLite file per store under the state
dir (``<state>/lineage/index-<store digest>.sqlite``). ``nbtrack.predict`` adds its rows as it
writes them; runs made elsewhere (another machine, a wiped state dir) are read in from their
prediction files the first time a lookup misses. It is a cache: losing it loses nothing, the
next lookup rebuilds what it needs from MLflow.

SQLite (WAL, a busy timeout) because several kernels of one machine write it at once; no MLflow.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from nbtrack import settings

_SCHEMA = """
create table if not exists predictions (
    prediction_id text not null,
    run_id text not null,
    part integer not null,
    row integer not null,
    ts integer not null
);
create index if not exists predictions_by_id on predictions (prediction_id);
create table if not exists runs (
    run_id text primary key,
    parts text not null default '',
    complete integer not null default 0
);
"""


class Hit(NamedTuple):
    """Where one prediction is: its inference run, part file number, row in it, and time (ms)."""

    run_id: str
    part: int
    row: int
    ts: int


_lock = threading.Lock()
_connections: dict[str, sqlite3.Connection] = {}


def index_path(store_uri: str) -> Path:
    digest = hashlib.sha256(store_uri.encode()).hexdigest()[:16]
    return settings.current().state_dir / "lineage" / f"index-{digest}.sqlite"


def _db(store_uri: str) -> sqlite3.Connection:
    path = index_path(store_uri)
    key = str(path)
    with _lock:
        db = _connections.get(key)
        if db is None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(key, timeout=60, check_same_thread=False, isolation_level=None)
            db.execute("pragma journal_mode=wal")
            db.execute("pragma synchronous=normal")
            db.executescript(_SCHEMA)
            _connections[key] = db
        return db


def add(
    store_uri: str, run_id: str, part: int, ids: Sequence[str], ts: Sequence[int] | int
) -> None:
    """Index one part file's rows (ids in row order); ``ts`` per row or one for all."""
    times = [ts] * len(ids) if isinstance(ts, int) else list(ts)
    rows = [(pid, run_id, part, i, t) for i, (pid, t) in enumerate(zip(ids, times, strict=True))]
    db = _db(store_uri)
    with _lock:
        db.execute("begin immediate")
        try:
            db.executemany(
                "insert into predictions (prediction_id, run_id, part, row, ts) "
                "values (?, ?, ?, ?, ?)",
                rows,
            )
            db.execute(
                "insert into runs (run_id, parts) values (?, ?) on conflict (run_id) do update "
                "set parts = runs.parts || excluded.parts",
                (run_id, f"{part},"),
            )
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise


def lookup(store_uri: str, prediction_id: str) -> list[Hit]:
    """Every indexed place of ``prediction_id``, newest first (an id a caller reused in several
    runs is in each)."""
    db = _db(store_uri)
    with _lock:
        rows = db.execute(
            "select run_id, part, row, ts from predictions where prediction_id = ? "
            "order by ts desc, run_id",
            (prediction_id,),
        ).fetchall()
    return [Hit(*r) for r in rows]


def indexed_parts(store_uri: str) -> dict[str, tuple[set[int], bool]]:
    """Run id -> (its indexed part numbers, whether the run is complete: ended and read in)."""
    db = _db(store_uri)
    with _lock:
        rows = db.execute("select run_id, parts, complete from runs").fetchall()
    return {r: ({int(p) for p in parts.split(",") if p}, bool(c)) for r, parts, c in rows}


def mark_complete(store_uri: str, run_ids: Iterable[str]) -> None:
    db = _db(store_uri)
    with _lock:
        db.executemany(
            "insert into runs (run_id, complete) values (?, 1) on conflict (run_id) do update "
            "set complete = 1",
            [(r,) for r in run_ids],
        )


def forget(store_uri: str, run_id: str) -> None:
    """Drop a run from the index (a half-made inference run that was removed)."""
    db = _db(store_uri)
    with _lock:
        db.execute("delete from predictions where run_id = ?", (run_id,))
        db.execute("delete from runs where run_id = ?", (run_id,))
