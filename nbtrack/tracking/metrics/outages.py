"""Stores that failed, left alone for a doubling while (so an outage costs one failure per
pause, not one per call), and whether this is a new outage (said once)."""

from __future__ import annotations

import re
import time

FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0  # seconds a failing store is left alone, doubling


class Outages:
    def __init__(self) -> None:
        self._down: dict[str, tuple[float, float]] = {}  # uri -> (retry at, pause)

    def up(self, uri: str, now: float) -> bool:
        """Whether ``uri`` may be tried now."""
        return self._down.get(uri, (0.0, 0.0))[0] <= now

    def down(self, uri: str) -> bool:
        """``uri`` failed: pause it, twice as long as last time. True when an outage starts."""
        pause = self._down.get(uri, (0.0, 0.0))[1]
        wait = min(MAX_BACKOFF, 2 * pause) or FIRST_BACKOFF
        self._down[uri] = (time.monotonic() + wait, wait)
        return pause == 0.0

    def up_again(self, uri: str) -> bool:
        """``uri`` answered: True when it had been down."""
        return self._down.pop(uri, None) is not None

    def clear(self) -> None:
        """Try every store again now (an explicit flush)."""
        self._down.clear()

    def next_retry(self, now: float) -> float | None:
        """Seconds until a paused store may be tried again, None when none is paused."""
        waits = [t - now for t, _ in self._down.values() if t > now]
        return min(waits) if waits else None


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    """An error's text without the credentials of any URL in it (MLflow quotes the URL)."""
    return _USERINFO.sub("", text)
