"""Finishing what an ended process left: MLflow catches up from its log after it is gone.

``spawn`` starts a detached process (its own session: the kernel's shutdown does not take it
along) when a process ends with points MLflow does not have yet, or runs waiting to be ended.
It waits for that process to exit (its owner locks are then free), adopts every run log on the
machine nobody owns, sends it, ends the runs, and exits. If it cannot finish (the store stays
down past ``GIVE_UP`` seconds without progress), the logs stay, and the next process that loads
nbtrack (``%load_ext``, ``nbtrack.run()``, ``nbtrack flush``) sends them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from nbtrack import logs

_log = logs.get(__name__)

# Seconds without progress after which a catch-up leaves the rest for later: a store that stays
# down must not keep a process (and the logs' locks) around for long.
GIVE_UP = 30.0


def spawn(state_dir: Path) -> None:
    root = str(Path(__file__).resolve().parents[3])
    code = (
        f"import sys; root = {root!r}\n"
        "if root not in sys.path: sys.path.insert(0, root)\n"
        "from nbtrack.tracking.metrics.catchup import main; main()"
    )
    log = Path(state_dir) / "catchup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err, open(os.devnull, "rb") as null:
        subprocess.Popen(
            [sys.executable, "-c", code, str(state_dir), str(os.getpid())],
            stdin=null,
            stdout=err,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )


def repoint(state_dir: Path, to: str, only: str | None = None) -> int:
    """Send the run logs bound for ``only`` (else all) to store ``to`` instead; returns how
    many were changed (a log another process is sending is left alone)."""
    import time

    from nbtrack.store import metric_log

    moved = 0
    for d in metric_log.run_dirs(Path(state_dir)):
        doc = metric_log.read_json(d / metric_log.RUN_FILE)
        if not doc or (only is not None and doc.get("uri") != only):
            continue
        # A catch-up may be trying the old store: it gives up within GIVE_UP seconds.
        deadline = time.monotonic() + 2 * GIVE_UP
        while True:
            with metric_log.locked(d / metric_log.OWNER_LOCK) as got:
                if got:
                    doc = metric_log.read_json(d / metric_log.RUN_FILE)
                    if doc:
                        metric_log.write_json(d / metric_log.RUN_FILE, {**doc, "uri": to})
                        moved += 1
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return moved


def run(
    state_dir: Path,
    parent: int | None = None,
    timeout: float | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    """Adopt and send every unowned run log; returns the points still not sent."""
    import time

    from nbtrack.tracking.metrics.sender import Sender

    notes: list[str] = []
    sender = Sender(Path(state_dir), notes.append, processes=2)
    # The parent releases its runs as it closes, or when it exits (a SIGTERM cut it short).
    import psutil

    deadline = time.monotonic() + 60
    while not sender.adopt_all() and parent and time.monotonic() < deadline:
        try:
            psutil.Process(parent).wait(timeout=0.2)
        except psutil.TimeoutExpired:
            continue
        except psutil.NoSuchProcess:
            pass
        sender.adopt_all()
        break
    start = time.monotonic()
    last_pending = sender.pending()
    last_progress = start
    while True:
        if sender.wait(5.0, retry=False):
            break
        now = time.monotonic()
        pending = sender.pending()
        if pending < last_pending:
            last_pending, last_progress = pending, now
        if now - last_progress > GIVE_UP or (timeout is not None and now - start > timeout):
            break
    left = sender.pending()
    sender.close()
    for note in notes:
        (say or (lambda text: print(text, file=sys.stderr)))(note)
    return left


def main() -> None:
    from nbtrack import store

    store.quiet_mlflow()
    state_dir, parent = Path(sys.argv[1]), int(sys.argv[2])
    run(state_dir, parent)
