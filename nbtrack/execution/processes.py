"""Ending a process with everything it started (the runner's and the grid worker's kernels)."""

from __future__ import annotations

import contextlib
import logging
import os

_log = logging.getLogger(__name__)


def kill_tree(pid: int) -> None:
    """Kill ``pid`` and all its descendants; a process already gone is fine."""
    # jupyter_client starts kernels in a session of their own, so killing the child's process
    # group would leave the kernel running: walk the tree instead.
    try:
        import psutil

        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except Exception:  # gone already, or psutil cannot see it: fall back to os.kill
        _log.debug("cannot list the process tree of %s", pid, exc_info=True)
        procs = []
    for p in procs:
        try:
            p.kill()
        except Exception:  # exited between the listing and the kill
            _log.debug("cannot kill %s", p.pid, exc_info=True)
    if not procs:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
