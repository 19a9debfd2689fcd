"""The durable local metric log: what "logged" means for ``nbtrack.log``.

A run's points are written, about once a second, to immutable Arrow IPC files in the state
directory, before MLflow sees them; MLflow catches up from these files in the background
(``tracking/metrics``), and readers (``query``) read them instead of MLflow's slow history.

Layout, per run (``<state>/metrics/<run_id>/``)::

    run.json                  {"uri": store, "run_id": ..., "thin": N}: where the points go, and
                              whether MLflow gets one point in N (NBTRACK_MLFLOW_METRICS=thin)
    <ns>-<pid>.arrow          points not yet all in MLflow (one file per write, never changed)
    sent/<ns>-<pid>.arrow     points MLflow holds (kept until the run's artifact is stored)
    end.json                  {"status", "end_time"}: the outcome, applied after the last point
    partial                   (empty) some points went to MLflow without this log: no artifact
    owner.lock                flock held by the process that logs the run (free: it is gone)

A file appears whole or not at all (written under a temporary name, fsynced, renamed), so a
kernel killed mid-write leaves nothing half-readable; a file that still cannot be read (a disk
error) is set aside as ``*.bad`` by the sender. Sending a file again after a crash is harmless:
MLflow's SQL store ignores a point identical in key, value, timestamp and step.

When a run ends, the whole log is stored as one Parquet artifact (``record.METRIC_LOG``),
sorted by key and step, which readers load in milliseconds where MLflow's
``get_metric_history`` of a million points takes half a minute.

Columns (``SCHEMA``): key (string), step (int64), timestamp (int64, ms), value (float64).
Only pyarrow is imported here, lazily: nbtrack.log must not pay for it before the first write.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no owner locks; a run's log is only caught up by its own process
    fcntl = None  # type: ignore[assignment]

COLUMNS = ("key", "step", "timestamp", "value")
RUN_FILE, END_FILE, OWNER_LOCK, SENT_DIR = "run.json", "end.json", "owner.lock", "sent"
PARTIAL = "partial"  # some points went to MLflow without this log (a full disk)


def prepare() -> None:
    """Import pyarrow's parts now, in the caller's thread (a run's start): the log and sender
    threads must not import (tracking/process_metrics.prepare says why), and the first
    ``nbtrack.log`` call must not pay the import."""
    import pyarrow.ipc
    import pyarrow.parquet  # noqa: F401


def schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("key", pa.string()),
            ("step", pa.int64()),
            ("timestamp", pa.int64()),
            ("value", pa.float64()),
        ]
    )


def root(state_dir: Path) -> Path:
    return Path(state_dir) / "metrics"


def run_dir(state_dir: Path, run_id: str) -> Path:
    return root(state_dir) / run_id


def run_dirs(state_dir: Path) -> list[Path]:
    """Every run with a local log on this machine."""
    base = root(state_dir)
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


# -- writing --------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0600: run.json names the store, credentials included when the URI carries them.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk: the half-written file frees its space
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the folder's entry is: a power cut must not lose a file
    # the writer already counted as written.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(doc).encode())


def read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def own_run(state_dir: Path, run_id: str, uri: str, thin: int = 1) -> tuple[Path, int | None]:
    """Create a run's log folder and own it (the owner lock's fd): the lock is taken before
    the run file that makes the folder adoptable is written. Otherwise another process's
    catch-up, starting in between, found a folder with a run file and a free lock, took the run
    over while its process was still logging, and ended it with the points it had seen (8
    processes starting at once: a run FINISHED with 3,000 of 20,000 points)."""
    d = run_dir(state_dir, run_id)
    fresh = not (d / RUN_FILE).is_file()
    (d / SENT_DIR).mkdir(parents=True, exist_ok=True)
    # A new folder's only other lockers are catch-ups that find no run file and let go at
    # once: wait for them. An existing folder's lock is the process's that owns it.
    fd = hold(d / OWNER_LOCK, blocking=fresh)
    if fresh:
        write_json(d / RUN_FILE, {"uri": uri, "run_id": run_id, "thin": thin})
    return d, fd


def open_run(state_dir: Path, run_id: str, uri: str, thin: int = 1) -> Path:
    """Create a run's log folder (once) naming the store its points go to."""
    d = run_dir(state_dir, run_id)
    if not (d / RUN_FILE).is_file():
        (d / SENT_DIR).mkdir(parents=True, exist_ok=True)
        write_json(d / RUN_FILE, {"uri": uri, "run_id": run_id, "thin": thin})
    return d


def mark_partial(d: Path) -> None:
    """Say in run folder ``d`` that the log lacks some points (for whoever adopts it). An empty
    file needs no data block, so a full disk usually still takes it."""
    with contextlib.suppress(OSError):
        (d / PARTIAL).touch()


def write_points(
    d: Path,
    keys: Sequence[str],
    steps: Sequence[int],
    stamps: Sequence[int],
    values: Sequence[float],
    name: str,
) -> Path:
    """Write one immutable file of points into run folder ``d``; returns its path."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.table(
        [
            pa.array(keys, pa.string()),
            pa.array(steps, pa.int64()),
            pa.array(stamps, pa.int64()),
            pa.array(values, pa.float64()),
        ],
        schema=schema(),
    )
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    path = d / f"{name}.arrow"
    _atomic_write(path, sink.getvalue().to_pybytes())
    return path


def file_name(seq: int) -> str:
    """A file name that sorts in writing order, and cannot collide between processes."""
    import time

    return f"{time.time_ns():020d}-{os.getpid()}-{seq:06d}"


# -- reading --------------------------------------------------------------------------------


def read_file(path: Path) -> Any:
    """One log file as a pyarrow Table (raises OSError or pyarrow's ArrowInvalid when bad)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).read_all()


def pending_files(d: Path) -> list[Path]:
    """Files of a run not yet all in MLflow, in writing order."""
    return sorted(d.glob("*.arrow"))


def sent_files(d: Path) -> list[Path]:
    return sorted((d / SENT_DIR).glob("*.arrow"))


def rows(path: Path) -> int:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def read_run(d: Path) -> Any | None:
    """Every point of a run's local log (sent and pending) as one Table, None when it has none.

    Files that cannot be read are skipped: a reader shows what it can.
    """
    import pyarrow as pa

    tables = []
    for path in sorted([*sent_files(d), *pending_files(d)], key=lambda p: p.name):
        try:
            tables.append(read_file(path))
        except (OSError, pa.ArrowInvalid):
            continue
    return pa.concat_tables(tables) if tables else None


def to_parquet(table: Any, path: Path) -> None:
    """The artifact form: sorted by key, step and timestamp, compressed."""
    import pyarrow.parquet as pq

    table = table.sort_by([("key", "ascending"), ("step", "ascending"), ("timestamp", "ascending")])
    pq.write_table(table, str(path), compression="zstd")


def read_parquet(path: Path) -> Any:
    """A run's Parquet artifact, every key. Keys stay dictionary-encoded as Parquet stores them:
    decoding a million key strings, then encoding them again to group by key, costs more than
    the rest of the read; a row filter (pyarrow's ``filters``) is slower than reading all and
    keeping some (query/metric_points picks keys)."""
    import pyarrow.parquet as pq

    return pq.read_table(str(path), read_dictionary=["key"])


# -- ownership ------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path, blocking: bool = False) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` for the block; yields whether it was got."""
    if fcntl is None:
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def hold(path: Path, blocking: bool = False) -> int | None:
    """Take an exclusive flock on ``path`` and keep it until the process ends (or ``release``);
    the fd, or None when another process holds it (``blocking``: wait for it instead)."""
    if fcntl is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    os.set_inheritable(fd, False)  # a child (a writer process) must not keep the run owned
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def owned_elsewhere(d: Path) -> bool:
    """Whether a live process other than this one holds the run's log (is logging it)."""
    with locked(d / OWNER_LOCK) as got:
        return not got
