"""MLflow entities turned into nbtrack's record views (``nbtrack.record``): nothing of MLflow's data
model leaves the store."""

from __future__ import annotations

from typing import Any

from nbtrack.record import ModelView, RunView, VersionView


def run_view(run: Any) -> RunView:
    """An MLflow ``Run`` as a ``RunView`` (the dicts are MLflow's own, not copied again)."""
    info, data = run.info, run.data
    return RunView(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        name=info.run_name or "",
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        artifact_uri=info.artifact_uri or "",
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=dict(data.tags),
        lifecycle_stage=info.lifecycle_stage or "active",
        user_id=info.user_id or "",
        datasets={i.dataset.name: i.dataset.digest for i in _dataset_inputs(run)},
    )


def _dataset_inputs(run: Any) -> list:
    inputs = getattr(run, "inputs", None)
    return list(getattr(inputs, "dataset_inputs", None) or [])


def version_view(mv: Any) -> VersionView:
    """An MLflow ``ModelVersion`` as a ``VersionView``."""
    return VersionView(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or None,
        source=mv.source or "",
        status=str(mv.status or ""),
        creation_time=mv.creation_timestamp,
        aliases=tuple(mv.aliases or ()),
        tags={str(k): str(v) for k, v in (mv.tags or {}).items()},
        current_stage=mv.current_stage,
        description=mv.description or "",
        model_id=getattr(mv, "model_id", None),
    )


def model_view(rm: Any) -> ModelView:
    """An MLflow ``RegisteredModel`` as a ``ModelView``."""
    return ModelView(
        name=rm.name,
        aliases={str(k): str(v) for k, v in (rm.aliases or {}).items()},
        tags={str(k): str(v) for k, v in (rm.tags or {}).items()},
        description=rm.description or "",
        latest_versions=tuple(str(mv.version) for mv in (rm.latest_versions or [])),
        last_updated=rm.last_updated_timestamp,
    )
