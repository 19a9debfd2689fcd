"""The model registry from the notebook: register, promote, roll back, archive, and the audit
trail that says who moved what, when and why.

A pure core: it talks to MLflow only through ``nbtrack.store`` and knows nothing of IPython or
widgets. What it writes is part of the run-record contract (README, "Model registry"):

- Stages are MLflow aliases, ``production`` and ``staging`` by default (NBTRACK_PRODUCTION_ALIAS,
  NBTRACK_STAGING_ALIAS), so users load ``models:/NAME@production``. The version production
  replaced holds the alias ``previous_production`` (the rollback target). MLflow's deprecated
  stage field (Production, Staging, Archived) is kept in step for older readers unless
  NBTRACK_LEGACY_STAGES=0.
- A version registered by nbtrack carries tags ``run_id``, the run's final metrics (one tag per
  metric key), ``data_hash``, ``git_commit``, ``notebook``, and ``nbtrack.*`` bookkeeping
  (``nbtrack.stage``, who promoted or archived it and when, and why).
- Every move (register, promote, rollback, archive) appends one record to the registered model's
  tags under a key of its own, ``nbtrack.audit.<unix time ns>.<random>``, holding JSON: the keys
  are unique (two writers never overwrite each other), sort in time order, and nbtrack never
  rewrites or deletes them.

Reading ``production`` is MLflow's alias, which moves in one update: a reader never sees no
production model in the middle of a promotion. The rest (stage tags, the legacy stage field) is
derived from the aliases after each move and re-derived until the aliases stop changing under
it, so two promotions racing end consistent: the later alias write wins and both are audited.
"""

# The public surface the facade, the CLI and the magic use, from the modules that hold it:
# names (stage aliases, version numbers), versions (reading), production (what is deployed,
# loading it), registering, moves (promote, rollback, archive), audit (the trail, can_edit).
from nbtrack.model_registry.audit import audit, audit_records, can_edit
from nbtrack.model_registry.moves import Move, archive, promote, rollback
from nbtrack.model_registry.names import (
    REFUSED_STATUSES,
    _who,
    aliases,
    previous_alias,
    stage_of,
    version_of,
)
from nbtrack.model_registry.production import ProductionModel, load, production
from nbtrack.model_registry.registering import register, version_tags
from nbtrack.model_registry.versions import (
    ModelSummary,
    VersionInfo,
    experiment_of,
    list_models,
    require,
    run_url,
    version,
    versions,
)

__all__ = [
    "REFUSED_STATUSES",
    "ModelSummary",
    "Move",
    "ProductionModel",
    "VersionInfo",
    "_who",
    "aliases",
    "archive",
    "audit",
    "audit_records",
    "can_edit",
    "experiment_of",
    "list_models",
    "load",
    "previous_alias",
    "production",
    "promote",
    "register",
    "require",
    "rollback",
    "run_url",
    "stage_of",
    "version",
    "version_of",
    "version_tags",
    "versions",
]
