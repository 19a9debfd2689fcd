"""How provenance writes a moment and names an experiment, in one place for the inference run,
the audit, the graph and the report."""

from __future__ import annotations

import datetime as dt

from nbtrack import store
from nbtrack.errors import NbtrackError


def iso_utc(ms: int, timespec: str = "milliseconds") -> str:
    """``ms`` (Unix time in ms) as ISO 8601 UTC with a ``Z``."""
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def experiment_label(experiment_id: str) -> str:
    """The experiment's name, or its id when the store cannot say (deleted, unreachable)."""
    try:
        return store.experiment_name(experiment_id)
    except NbtrackError:
        return experiment_id
