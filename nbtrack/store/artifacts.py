"""A run's artifacts read back: one file's text, or a folder downloaded."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlflow.exceptions import MlflowException

from nbtrack.store.connection import tracking_uri


def artifact_text(run_id: str, path: str) -> str | None:
    """The text of a run's artifact ``path``, or None when the run has no such artifact."""
    from mlflow.artifacts import download_artifacts

    # MLflow draws a progress bar per download; in a notebook that is noise under the user's
    # output (the user's own setting wins).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="nbtrack-") as tmp:
        try:
            local = download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=tracking_uri()
            )
        except (MlflowException, OSError):
            # Missing artifacts surface as either, depending on the artifact repository.
            return None
        try:
            return Path(local).read_text(encoding="utf-8", errors="replace")
        except (IsADirectoryError, OSError):
            return None


def download_artifacts(run_id: str, path: str, dst: str | os.PathLike) -> Path | None:
    """Download a run's artifact folder (or file) ``path`` into ``dst``, in one request; None
    when the run has no such artifact."""
    from mlflow.artifacts import download_artifacts as download

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return Path(
            download(
                run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=tracking_uri()
            )
        )
    except (MlflowException, OSError):
        return None
