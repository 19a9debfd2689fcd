"""One metric point, and the checks a point passes at the call site (nbtrack.log).

A point is a plain tuple ``(run_id, key, value, timestamp_ms, step)``, read through the index
names below. Not a NamedTuple: building one costs ~0.26 µs more a point on a ~1 µs producer path
(measured here), and marshal, the pipe to writer processes, refuses tuple subclasses.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable, Mapping

from nbtrack.errors import InvalidMetric, UsageError

try:
    import fcntl
except ImportError:  # Windows: spool appends are not locked against a concurrent replay
    fcntl = None  # type: ignore[assignment]


# What MLflow accepts as a metric name (mlflow.utils.validation): checked here, at the call site,
# so a bad key fails in the user's loop rather than later in a writer.
_KEY = re.compile(r"[/\w.\- :]+")
MAX_KEY = 250
MAX_STEP = 2**63  # MLflow stores steps as 64-bit integers


CHUNK = 1000  # points a writer takes at once: one log_batch (MLflow's per-call metric limit)

Point = tuple  # (run_id, key, value, timestamp_ms, step)
RUN_ID, KEY, VALUE, TIMESTAMP, STEP = range(5)  # a Point's fields


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidMetric(str(key), "", "metric names must be non-empty strings")
    if len(key) > MAX_KEY:
        raise InvalidMetric(key[:40] + "...", "", f"metric names are at most {MAX_KEY} characters")
    norm = posixpath.normpath(key)
    if not _KEY.fullmatch(key) or norm != key or norm == "." or norm.startswith(("..", "/")):
        raise InvalidMetric(
            key,
            "",
            "use letters, digits and _ - . : / space, as a clean relative path "
            "(no '..', no leading, trailing or double '/')",
        )
    return key


def check_value(key: str, value: object) -> float:
    if type(value) is float or type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise InvalidMetric(key, repr(value)[:60], "too large for a 64-bit float") from None
    # bool is an int to Python but not a number to MLflow's validation, which refuses it
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise InvalidMetric(key, repr(value)[:60], "metric values must be numbers")
    try:
        return float(value)  # numpy scalars, 0-d tensors, Decimal, Fraction
    except (TypeError, ValueError, OverflowError):
        raise InvalidMetric(key, repr(value)[:60], "metric values must be numbers") from None


def check_step(step: object) -> int:
    if type(step) is not int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise UsageError(f"step={step!r} is not an integer", "pass an int, e.g. step=epoch")
        step = step.__index__()  # numpy and torch integers
    if not -MAX_STEP <= step < MAX_STEP:
        raise UsageError(f"step={step} does not fit in 64 bits", "MLflow stores steps as int64")
    return step


class _RunState:
    """What the producer side remembers about a run: where it goes, and each key's last step."""

    __slots__ = ("latest", "nonfinite", "steps", "uri")

    def __init__(self, uri: str):
        self.uri = uri
        self.steps: dict[str, int] = {}
        self.latest: dict[str, tuple[int, float]] = {}
        self.nonfinite: set[str] = set()


class Runs:
    """The producer side's runs: each call's points checked, stamped and numbered."""

    def __init__(self, notify: Callable[[str], None]):
        self._runs: dict[str, _RunState] = {}
        self._notify = notify

    def points(
        self, uri: str, run_id: str, metrics: Mapping[str, object], step: int | None
    ) -> list[Point]:
        """The points of one nbtrack.log call; raises, naming the key, before any is made."""
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _RunState(uri)
        if step is not None:
            step = check_step(step)
        ts = time.time_ns() // 1_000_000
        steps = run.steps
        points = []
        # Everything is checked before anything is queued: a call with one bad key logs nothing.
        for key, value in metrics.items():
            v = value if type(value) is float else check_value(key, value)
            if key not in steps:
                check_key(key)
            points.append(
                (run_id, key, v, ts, step if step is not None else steps.get(key, -1) + 1)
            )
        for point in points:
            key, v, s = point[KEY], point[VALUE], point[STEP]
            steps[key] = s
            run.latest[key] = (s, v)
            if v - v and key not in run.nonfinite:  # NaN or +-inf (finite - itself is 0.0)
                run.nonfinite.add(key)
                self._notify(
                    f"metric {key!r} got {v}; it is kept as MLflow keeps it (NaN as NaN, "
                    "inf as the largest float), and flagged once per key"
                )
        return points

    def uri(self, run_id: str) -> str:
        return self._runs[run_id].uri

    def latest(self, run_id: str) -> dict[str, tuple[int, float]]:
        """Last (step, value) of each key logged through nbtrack.log in a run."""
        run = self._runs.get(run_id)
        return dict(run.latest) if run else {}
