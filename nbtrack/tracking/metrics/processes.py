"""Writer processes: MLflow's ORM work moved out of the kernel, fed ranges of the log over a pipe.

``WriterProcesses`` is a Sender's pool: it starts them when the sender thread is too busy (see
writer.py for the measurements behind that), hands each up to WINDOW ranges (a log file's path
and rows: the points themselves never cross the pipe), puts back what a dead one had not
acknowledged, and lets idle ones go. ``worker_main`` runs in the process.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from nbtrack.logs import failures_logged
from nbtrack.tracking.metrics.points import CHUNK
from nbtrack.tracking.metrics.ranges import Range, send_range

# -- the pipe between the kernel and a writer process --------------------------------------------

if TYPE_CHECKING:
    from nbtrack.tracking.metrics.sender import Sender

_log = logging.getLogger(__name__)

WINDOW = 2  # ranges a writer process holds: one being written, one ready to go
IDLE_EXIT = 120.0  # writer processes exit after this long without work
BACKLOG = 5 * CHUNK  # points this many waiting after a write mean the thread cannot keep up
# Writer processes used to run at nice 10; on a busy machine that starved them (0.8-1.5k
# points/s against 13-25k quiet). The training loop no longer waits for them (it writes to the
# local log), so they run at the kernel's priority and MLflow catches up sooner.
NICE = 0


def send(f: IO[bytes], obj: object) -> None:
    data = marshal.dumps(obj)  # str, float and int tuples only: fast, and no pickle on the pipe
    f.write(len(data).to_bytes(4, "big") + data)
    f.flush()


def recv(f: IO[bytes]) -> Any:
    head = f.read(4)
    if len(head) < 4:
        return None
    n = int.from_bytes(head, "big")
    data = f.read(n)
    return marshal.loads(data) if len(data) == n else None


class WriterProcess:
    """A writer process and the kernel-side thread that reads its acknowledgements."""

    def __init__(self, writer: Sender):
        self.writer = writer
        self.inflight: dict[int, Range] = {}
        self.ready = False
        self.alive = True
        self.closing = False
        self.last_sent = 0  # seq of the last range written to the pipe (it survives the kernel)
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        # The worker imports this very package, wherever the kernel found it (a checkout the
        # kernel put on sys.path comes first; site-packages keeps its place after the stdlib).
        root = str(Path(__file__).resolve().parents[3])  # the folder holding nbtrack/
        code = (
            f"import sys; root = {root!r}\n"
            "if root not in sys.path: sys.path.insert(0, root)\n"
            "from nbtrack.tracking.metrics.processes import worker_main; worker_main()"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(NICE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Its own session: a kernel interrupt (SIGINT to the process group) or a kill
                # of the kernel's group does not cut a write short.
                start_new_session=True,
            )
        except OSError:
            pass  # the reader below reports it gone, and the thread goes on writing
        threading.Thread(target=self._read, name="nbtrack-writer-ack", daemon=True).start()

    def send(self, seq: int, job: Range) -> bool:
        try:
            with self._lock:
                assert self.proc is not None and self.proc.stdin is not None
                send(self.proc.stdin, (seq, job.wire()))
                self.last_sent = seq
            return True
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        """Let the process finish what it holds and exit (EOF on its input)."""
        self.closing = True
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self.proc is not None and self.proc.stdin is not None:
                self.proc.stdin.close()

    def _read(self) -> None:
        w = self.writer
        try:
            if self.proc is None or self.proc.stdout is None:
                return
            while (msg := recv(self.proc.stdout)) is not None:
                if msg[0] == "ready":
                    with w._cond:
                        self.ready = True
                        w._cond.notify_all()
                    w._wake.set()
                elif msg[0] == "done":
                    _, seq, error, kind = msg
                    with w._cond:
                        job = self.inflight.pop(seq, None)
                    if job is not None:
                        w._finish(job, error, kind)
        except (OSError, ValueError, EOFError):
            pass
        finally:
            if self.proc is not None:
                with failures_logged(_log, "self.proc.wait(timeout=30)"):
                    self.proc.wait(timeout=30)
            w._pool.ended(self)


class WriterProcesses:
    """A Sender's writer processes: started when its thread is too busy, each fed up to
    WINDOW ranges; what a dead one had not acknowledged goes back to the sender's queue.

    Shares the sender's condition (``writer._cond``): the in-flight bookkeeping and the sender's
    pending count change together.
    """

    def __init__(self, writer: Sender, limit: int, spawn_busy: float):
        self.writer = writer
        self.limit = limit  # most processes to start (0: the thread writes everything)
        self.spawn_busy = spawn_busy  # share of its time the thread may write before they start
        self.workers: list[WriterProcess] = []
        self._spawn_failures = 0
        self._seq = 0
        self._busy = 0.0  # seconds the thread spent writing since _busy_since
        self._busy_since = time.monotonic()

    def __bool__(self) -> bool:
        return bool(self.workers)

    def ready(self) -> int:
        return sum(1 for w in self.workers if w.ready and w.alive)

    def take(self, chunk: Range) -> tuple[WriterProcess, int] | None:
        """A ready writer process with room in its window (waiting for one if all are busy),
        with the range registered as in flight there; None when none is ready, and the thread
        sends the range itself."""
        cond = self.writer._cond
        with cond:
            while True:
                ready = [w for w in self.workers if w.ready and w.alive]
                if not ready:
                    return None
                free = [w for w in ready if len(w.inflight) < WINDOW]
                if free:
                    worker = min(free, key=lambda w: len(w.inflight))
                    self._seq += 1
                    worker.inflight[self._seq] = chunk
                    return worker, self._seq
                cond.wait(1.0)

    def wrote(self, seconds: float, queued: int) -> None:
        """The thread spent ``seconds`` writing a chunk, with ``queued`` points still waiting:
        start the processes once it is busy for more than ``spawn_busy`` of its time, or a
        backlog builds."""
        self._busy += seconds
        if self.limit <= 0 or len(self.workers) >= self.limit:
            return
        now = time.monotonic()
        span = now - self._busy_since
        busy = span >= 1.0 and self._busy / span >= self.spawn_busy
        if span >= 1.0:
            self._busy, self._busy_since = 0.0, now
        if busy or queued >= BACKLOG or self.spawn_busy <= 0:
            with self.writer._cond:  # listed before it starts: its reader may report it gone
                new = [WriterProcess(self.writer) for _ in range(self.limit - len(self.workers))]
                self.workers += new
            for worker in new:
                worker.start()

    def ended(self, worker: WriterProcess) -> None:
        """Called by a worker's reader thread when its process is gone."""
        w = self.writer
        failed = False
        with w._cond:
            worker.alive = False
            if worker in self.workers:
                self.workers.remove(worker)
            # Ranges it had not acknowledged go back to the front of the queue; any it did write
            # are ignored by MLflow as exact duplicates.
            for seq in sorted(worker.inflight, reverse=True):
                w._requeue(worker.inflight.pop(seq))
            if not worker.ready and not worker.closing:
                self._spawn_failures += 1
                if self._spawn_failures >= 2 and self.limit:
                    self.limit = 0
                    failed = True
            w._cond.notify_all()
        w._wake.set()
        if failed:
            w._notify(
                "nbtrack's writer processes could not start; metrics are written from the "
                "kernel (slower)"
            )

    def close(self, wait: bool = False) -> None:
        """Let every process finish what it holds and exit; ``wait`` for them (after a flush
        they hold nothing, and exit at once)."""
        with self.writer._cond:
            workers = list(self.workers)
        for w in workers:
            w.close()
        for w in workers if wait else ():
            if w.proc is not None:
                try:
                    w.proc.wait(timeout=5)
                except Exception:
                    _log.debug("a writer process did not exit", exc_info=True)


def worker_main() -> None:
    """A writer process: read ranges from stdin, send each to its store, acknowledge on stdout.

    On EOF (the kernel closed the pipe, or died) it finishes the ranges it already received,
    then exits; what it could not acknowledge is sent again by whoever catches the log up
    (MLflow keeps one copy).
    """
    nice = int(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol gets private copies of stdin/stdout; a library printing to stdout then goes to
    # stderr instead of corrupting the acknowledgements.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with open(os.devnull, "rb") as null:
        os.dup2(null.fileno(), 0)

    from nbtrack import store

    store.quiet_mlflow()
    if nice and hasattr(os, "nice"):
        os.nice(nice)

    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        # Read ahead, so the kernel's next range is never stuck in a full pipe while we write.
        try:
            while (msg := recv(proto_in)) is not None:
                inbox.put(msg)
        finally:
            inbox.put(None)

    threading.Thread(target=read, daemon=True).start()
    acking = True
    with contextlib.suppress(OSError):
        send(proto_out, ("ready", os.getpid()))
    while (msg := inbox.get()) is not None:
        seq, wire = msg
        error, kind = send_range(Range.from_wire(wire))
        if acking:
            try:
                send(proto_out, ("done", seq, error, kind))
            except OSError:
                acking = False  # the kernel is gone: keep writing what we received
