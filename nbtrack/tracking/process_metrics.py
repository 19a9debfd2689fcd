"""The process's one metric writer, and what it does with logs other processes left.

``tracker`` re-exports ``writer``, ``catch_up`` and ``wait_caught_up``; it adds to
``before_close`` what must happen as the process ends (its open runs ended KILLED).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

from nbtrack import logs, settings
from nbtrack.errors import UsageError, warn
from nbtrack.store import metric_log
from nbtrack.tracking.metrics.writer import MetricWriter

_log = logs.get(__name__)

before_close: list[Callable[[], None]] = []  # handed to the writer when it is made
caught_up = False  # whether this process looked for logs ended processes left
_writer: MetricWriter | None = None
_writer_lock = threading.Lock()


def writer() -> MetricWriter:
    global _writer
    with _writer_lock:
        if _writer is None:
            s = settings.current()
            _writer = MetricWriter(
                state_dir=s.state_dir, notify=warn, maxsize=s.queue_max, processes=s.writers
            )
            _writer.before_close.extend(before_close)
        return _writer


def prepare() -> None:
    """Import, in the user's thread at the first run's start, every module the log and sender
    threads use. A thread's first import takes Python's global import lock, and a Ctrl-C that
    lands inside an import in the user's thread (IPython formatting the first interrupt's
    traceback when a second one comes) can leave that lock held for good: the log thread's
    first import of store.metric_runs then hung forever (seen in a kernel, under gdb)."""
    from nbtrack.store import metric_runs  # noqa: F401

    metric_log.prepare()


def progress(run_id: str) -> tuple[int, int] | None:
    """(points in MLflow, points logged) while MLflow catches up with a run; else None."""
    return _writer.progress(run_id) if _writer is not None else None


def catch_up() -> list[str]:
    """Send, in the background, the metric logs that ended processes left on this machine
    (called when nbtrack loads); returns the runs taken over."""
    global caught_up
    caught_up = True
    try:
        return writer().adopt_orphans()
    except Exception:
        _log.warning("nbtrack could not look for unsent metric logs", exc_info=True)
        return []


def end_orphaned_logs(timeout: float) -> list[str]:
    """Take over the metric logs of processes that died mid-run, send them and end their runs
    (waiting at most ``timeout`` seconds); returns the runs this process closed KILLED so (the
    extension's warm-up may have taken some over a moment before), each reported once. Runs
    still sending at the timeout go on in the background."""
    catch_up()
    sender = writer().sender
    wait_caught_up(sender.adopted(), timeout)
    return sender.killed_runs()


def wait_caught_up(run_ids: Sequence[str], timeout: float = 600.0) -> list[str]:
    """Wait until MLflow holds every point of these runs and they are ended (another process
    logged them: a grid point's or a reproduction's kernel, whose catch-up may still be
    sending). A log nobody is sending is taken over and sent from here. Returns the runs still
    catching up at the timeout."""
    state = settings.current().state_dir
    deadline = time.monotonic() + timeout
    while True:
        left = [r for r in run_ids if metric_log.run_dir(state, r).is_dir()]
        if not left or time.monotonic() > deadline:
            return left
        if catch_up():
            writer().sender.wait(min(5.0, max(0.0, deadline - time.monotonic())), left)
        else:
            time.sleep(0.2)


def check_thin(s: settings.Settings) -> None:
    """NBTRACK_MLFLOW_METRICS, said at a run's start (where the user can act on it)."""
    if s.metric_thin is None:
        raise UsageError(
            f"NBTRACK_MLFLOW_METRICS={os.environ.get('NBTRACK_MLFLOW_METRICS')!r} is not a choice",
            "set it to all, thin (one point in 100 to MLflow) or thin:N",
        )


def end_later(run_id: str, uri: str, status: str, ended: float, error: Exception) -> None:
    """MLflow did not take a run's end (an outage): it is kept with the run's metric log and
    sent when the store answers (by this process, else by a catch-up or the next one), so the
    run ends with its own status and time rather than KILLED by the orphan check."""
    writer().sender.end(run_id, status, int(ended * 1000), refused_by=uri)
    warn(
        f"the tracking store did not take the end of run {run_id} ({error}); nbtrack ends it "
        f"{status} when the store answers"
    )
