"""Runs a dead kernel left behind: RUNNING in the store, their process gone. They are closed as
KILLED (with the reason) by the next kernel on the same host, when nbtrack loads or on request.
A process is told apart from a later one with the same pid by its start time
(``nbtrack.pid_start``).
"""

from __future__ import annotations

import os
import socket
import threading

from nbtrack import record as R
from nbtrack import settings, store
from nbtrack.capture.redaction import nbtrack_text
from nbtrack.store import metric_log


def alive(pid: int, started: str) -> bool:
    """Is process ``pid`` the one that started at ``started`` (a pid can be reused)?"""
    import psutil

    try:
        proc = psutil.Process(pid)
        return not started or abs(proc.create_time() - float(started)) < 1.0
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True


_orphans_lock = threading.Lock()


def close_orphans(own: set[str]) -> list[str]:
    """Close as KILLED the runs of this host whose kernel process is gone (``own``: the runs
    this process is running, never closed)."""
    with _orphans_lock:  # the extension's warm-up and an explicit call may overlap
        return _close_orphans(own)


def _close_orphans(own: set[str]) -> list[str]:
    host = socket.gethostname()
    closed = []
    # A run with a metric log on this machine is ended by whoever sends its last point (with
    # the status its cell ended with, or KILLED): not here, where its points may still be on
    # their way.
    logged = {d.name for d in metric_log.run_dirs(settings.current().state_dir)}
    for run in store.running_runs(host):
        if run.run_id in logged:
            continue
        tags = run.tags
        try:
            pid = int(tags.get(R.TAG_PID, ""))
        except ValueError:
            continue
        if pid == os.getpid() and run.run_id in own:
            continue
        if alive(pid, tags.get(R.TAG_PID_START, "")):
            continue
        reason = nbtrack_text(f"kernel process {pid} on {host} ended during the run")
        store.mark_killed(run.run_id, reason)
        closed.append(run.run_id)
    return closed
