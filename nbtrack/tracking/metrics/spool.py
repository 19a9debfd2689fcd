"""Writing a chunk, in the kernel's thread or in a writer process, and the spool it falls back on.

A chunk is persisted run by run (one quick retry covers a blip); a run the store refuses is
appended to a spool file (JSON lines, fsynced, one per process, locked against a concurrent
replay) in the state directory, and ``replay`` sends the spool again on every flush.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nbtrack import logs
from nbtrack.tracking.metrics.points import Point

_log = logs.get(__name__)

# Persists points of one run: (uri, run_id, [(key, value, timestamp_ms, step), ...]).
Persist = Callable[[str, str, list[tuple[str, float, int, int]]], None]
try:
    import fcntl
except ImportError:  # Windows: spool appends are not locked against a concurrent replay
    fcntl = None  # type: ignore[assignment]


def by_run(chunk: list[Point]) -> dict[str, list[tuple[str, float, int, int]]]:
    by_run: dict[str, list[tuple[str, float, int, int]]] = {}
    for run_id, key, value, ts, step in chunk:
        by_run.setdefault(run_id, []).append((key, value, ts, step))
    return by_run


def with_retry(persist: Persist, uri: str, run_id: str, points: list) -> None:
    try:
        persist(uri, run_id, points)
    except Exception:
        _log.debug("persist(uri, run_id, points) failed", exc_info=True)
        time.sleep(0.2)  # one quick retry covers a blip
        persist(uri, run_id, points)


def persist_chunk(
    persist: Persist, spool_dir: Path, uris: Mapping[str, str], chunk: list[Point]
) -> tuple[list[str], str | None]:
    """Persist a chunk run by run; spool the runs the store refused. Returns (spooled run ids,
    the last error)."""
    spooled, error = [], None
    for run_id, points in by_run(chunk).items():
        try:
            with_retry(persist, uris[run_id], run_id, points)
        except Exception as e:
            _log.debug("with_retry(persist, uris[run_id], run_id, points) failed", exc_info=True)
            error = (
                f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            )
            spool(spool_dir, uris[run_id], run_id, points)
            spooled.append(run_id)
    return spooled, error


def spool(spool_dir: Path, uri: str, run_id: str, points: list) -> None:
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"spool-{os.getpid()}.jsonl"
    line = json.dumps({"uri": uri, "run_id": run_id, "points": points}) + "\n"
    while True:
        with open(path, "a", encoding="utf-8") as f:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_EX)
                # A replay may have claimed (renamed) the file between our open and our lock:
                # then this handle is no longer the spool, and the line must go to a new one.
                try:
                    if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                        continue
                except FileNotFoundError:
                    continue
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            return


def read_spool(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)  # a writer that opened it before the rename finishes
        records = []
        for line in f:
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))  # a torn last line (power loss) is skipped
        return records


def replay(persist: Persist, spool_dir: Path) -> tuple[int, int, str | None]:
    """Send spooled points to their stores: (points still spooled, points sent, last error)."""
    if not spool_dir.is_dir():
        return 0, 0, None
    left = sent = 0
    failing: dict[str, str] = {}  # uri -> error: one failure per store, not one per record
    for path in sorted(spool_dir.glob("spool-*.jsonl")):
        claimed = path.with_name(f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
        try:
            path.rename(claimed)  # atomic: of two kernels replaying, one gets the file
        except OSError:
            continue
        for record in read_spool(claimed):
            uri, run_id = record["uri"], record["run_id"]
            points = [tuple(p) for p in record["points"]]
            if uri not in failing:
                try:
                    with_retry(persist, uri, run_id, points)
                    sent += len(points)
                    continue
                except Exception as e:
                    _log.debug("with_retry(persist, uri, run_id, points) failed", exc_info=True)
                    failing[uri] = f"{type(e).__name__}: {e}"
            spool(spool_dir, uri, run_id, points)
            left += len(points)
        claimed.unlink(missing_ok=True)
    return left, sent, (list(failing.values())[-1] if failing else None)
