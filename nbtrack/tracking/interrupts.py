"""Ctrl-C while nbtrack closes something: ignored until it is closed."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """A second Ctrl-C (the user impatient while a run ends, or a stopped grid cleans up) must
    not leave things half-closed, nor print a traceback from an IPython callback: it is
    ignored for the block (about a second at most where nbtrack waits)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: None)
    except ValueError:  # not in the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
