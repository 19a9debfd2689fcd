"""This process's memory of tracking servers that did not answer: one bounded wait per outage.

A server that hangs (stopped, overloaded, a dead proxy) accepts the connection and never answers,
so each MLflow call waits its whole timeout; a tracked cell makes a dozen calls, and the next cell
as many again. Here the first call that times out marks its URI down for a window; until the
window ends every call to that URI fails at once with ``StoreUnreachable``, without a request. (A
refused connection is remembered too, but opens no window: it costs no wait, and the next call
finds the server as soon as it is back.) The first call after the window is a probe: it goes to
the server; if it fails too, the window doubles (up to ``MAX_WINDOW``); any call that succeeds
clears the outage.

The tracker and the metric writer ask ``unreachable(uri)`` before work they would rather skip or
spool than fail on; ``outage(uri)`` says since when and how many calls waited or failed fast.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from nbtrack.errors import StoreError, warn

FIRST_WINDOW = 10.0  # seconds a URI stays marked down after its first failure
MAX_WINDOW = 120.0  # a long outage is probed at least this often: one timeout per probe
HEALTH_TIMEOUT = 1.0  # seconds the server's /health may take to tell slow from hung


class StoreUnreachable(StoreError):
    """The tracking server did not answer (timeout, refused): this call waited once, or, while
    the outage is remembered, did not wait at all."""


@dataclass(frozen=True)
class Outage:
    """What this process knows of a URI that stopped answering."""

    since: float  # time.time() of the first failure
    reason: str  # the first failure, in a few words
    failures: int  # calls that went to the server and failed (each waited up to a timeout)
    fast_failures: int  # calls refused at once, without a request
    retry_in: float  # seconds until the next call is let through as a probe


@dataclass
class _State:
    since: float
    reason: str
    window: float
    retry_at: float  # time.monotonic()
    failures: int = 1
    fast_failures: int = 0
    told: bool = False


_lock = threading.Lock()
_down: dict[str, _State] = {}


def unreachable(uri: str) -> bool:
    """Whether calls to ``uri`` fail at once now (its server did not answer, and the backoff
    window since has not ended)."""
    with _lock:
        state = _down.get(uri)
        return state is not None and time.monotonic() < state.retry_at


def outage(uri: str) -> Outage | None:
    """The outage of ``uri`` this process remembers; None when its last call succeeded."""
    with _lock:
        s = _down.get(uri)
        if s is None:
            return None
        return Outage(
            s.since,
            s.reason,
            s.failures,
            s.fast_failures,
            max(0.0, s.retry_at - time.monotonic()),
        )


def check(uri: str, operation: str, shown: str) -> None:
    """Before a call: raise StoreUnreachable when ``uri`` is known down; after the window, let
    this call through as the probe (the others keep failing fast while it waits)."""
    with _lock:
        s = _down.get(uri)
        if s is None:
            return
        now = time.monotonic()
        if now < s.retry_at:
            s.fast_failures += 1
            ago = time.time() - s.since
            raise StoreUnreachable(
                operation,
                f"the store has not answered for {ago:.0f} s ({s.reason}); nbtrack tries it "
                f"again in {s.retry_at - now:.0f} s",
                shown,
            )
        s.retry_at = now + s.window  # this call probes; until it returns, the others fail fast


def failed(uri: str, error: BaseException, operation: str, shown: str) -> StoreUnreachable | None:
    """After a failed call: when the server did not answer, remember it and return the error to
    raise; None when the failure was something else.

    Only a call that waited (a timeout) on a server that does not answer its health check
    either opens a fail-fast window, and says so, once per outage:
    a refused connection costs nothing, so the next call may as well try (and finds the server
    back as soon as it is), and each caller already reports its own failure.
    """
    found = _unreachable_reason(error)
    if found is None:
        return None
    reason, waited = found
    if waited and _answers(uri):
        return None  # slow, not down: this call failed, the next ones may go ahead
    now = time.monotonic()
    with _lock:
        s = _down.get(uri)
        if s is None:
            s = _down[uri] = _State(time.time(), reason, 0.0, now, failures=0)
        s.failures += 1
        if waited:
            s.reason = reason
            s.window = FIRST_WINDOW if s.window == 0 else min(MAX_WINDOW, s.window * 2)
            s.retry_at = now + s.window
        tell = waited and not s.told
        s.told = s.told or tell
        window = s.window
    if tell:
        warn(
            f"the tracking store at {shown} is unreachable ({reason}); nbtrack's calls to it "
            f"fail at once until it answers again (next try in {window:.0f} s)"
        )
    return StoreUnreachable(operation, f"the store is unreachable ({reason})", shown)


def succeeded(uri: str) -> None:
    """After a call that got an answer: the outage, if any, is over."""
    if uri in _down:  # the common case costs a dict lookup, no lock
        with _lock:
            _down.pop(uri, None)


def forget(uri: str | None = None) -> None:
    """Drop what this process remembers (of ``uri``, or of every store)."""
    with _lock:
        if uri is None:
            _down.clear()
        else:
            _down.pop(uri, None)


def _unreachable_reason(error: BaseException) -> tuple[str, bool] | None:
    """(a few words, whether the call waited) when ``error`` (or what caused it) is a timeout or
    a failed connection; None for anything else."""
    import requests
    import urllib3

    found = None
    for e in _causes(error):
        if isinstance(e, ConnectionRefusedError):
            return "connection refused", False
        if isinstance(e, urllib3.exceptions.ReadTimeoutError | requests.exceptions.ReadTimeout):
            # requests reports a read timeout whose retries ran out as a ConnectionError
            seconds = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
            return (f"no answer within {seconds} s" if seconds else "no answer"), True
        if isinstance(
            e, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError
        ):
            found = found or ("no answer", True)
        elif isinstance(e, requests.exceptions.ConnectionError | ConnectionError):
            found = found or ("cannot connect", False)
    return found


def _answers(uri: str) -> bool:
    """Whether the server answers its health check within a second: a call that timed out on a
    server that does (a big batch, a slow query) is no outage, and must not fail the calls of
    the next seconds. A hung server answers nothing, so this costs it one second more."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT)
    except requests.RequestException:
        return False
    return True  # any answer, even a refusal, is an answer


def _causes(error: BaseException) -> list[BaseException]:
    """The error, what caused it, and the errors requests and urllib3 wrap in their arguments
    (a ConnectionError holds urllib3's MaxRetryError, whose ``reason`` is the real failure)."""
    found: list[BaseException] = []
    todo = [error]
    while todo and len(found) < 30:
        e = todo.pop()
        if any(e is f for f in found):
            continue
        found.append(e)
        todo += [a for a in e.args if isinstance(a, BaseException)]
        for attr in ("reason", "__cause__", "__context__"):
            nxt = getattr(e, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return found
