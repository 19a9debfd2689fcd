"""``nbtrack.log_data_profile``: a tracked run records the profile of the data it trained on, the
same per-column profile every inference run records, so ``nbtrack.diff(training, inference)``
shows how production inputs moved away from it."""

from __future__ import annotations

from typing import Any

from nbtrack import record as R
from nbtrack import store
from nbtrack.capture.redaction import nbtrack_text
from nbtrack.errors import UsageError
from nbtrack.provenance import rows


def log_data_profile(data: Any) -> dict[str, Any]:
    """Profile ``data`` (a DataFrame or an array) onto the tracked run; returns the profile."""
    from nbtrack.tracking import tracker

    run = tracker.active()
    if run is None or not getattr(run, "run_id", None):
        raise UsageError(
            "nbtrack.log_data_profile needs a tracked run",
            "call it inside a %%track cell or a `with nbtrack.run():` block",
        )
    profile = rows.Profile()
    profile.add(rows.frame_of(data))
    store.log_files(
        run.run_id, {nbtrack_text(R.ARTIFACT_INPUT_PROFILE): nbtrack_text(profile.json())}
    )
    return profile.to_dict()
