"""What the registry panel reads and does, handed to it by its caller: the facade builds a
``RegistrySource`` from ``nbtrack.model_registry``, so the panel imports no registry, store or
facade.

The panel reads versions and summaries by attribute only. A version: ``version``, ``stage``,
``aliases``, ``legacy_stage``, ``run_id``, ``run_status``, ``data_hash``, ``created``,
``key_metrics(n)``; a model summary: ``name``, ``production``, ``staging``, ``previous``,
``latest``, ``updated``; an audit record: a dict with ``when``, ``who``, ``action``, ``stage``,
``from_version``, ``to_version``, ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RegistrySource:
    list_models: Callable[[], list[Any]]  # the registered models' summaries
    require: Callable[[str], Any]  # raises NotFound when there is no such model
    can_edit: Callable[[str], str | None]  # why the store refuses moves; None when it accepts
    versions: Callable[..., list[Any]]  # versions(name, limit=n): the newest, and any aliased
    audit_records: Callable[[str], list[dict[str, Any]]]
    stage_aliases: Callable[[], Collection[str]]  # the aliases that are stages (not shown twice)
    previous_alias: Callable[[], str]  # the alias of the rollback target
    refused_statuses: Collection[str]  # run statuses a promotion refuses without force
    experiment_of: Callable[[Any], str | None]  # a version's run's experiment
    run_url: Callable[[Any], str | None]  # a version's run in the MLflow UI
    # The moves, called with keywords: promote(name, version, stage=, reason=, force=),
    # rollback(name, reason=), archive(name, version, reason=); each returns the move done.
    promote: Callable[..., Any]
    rollback: Callable[..., Any]
    archive: Callable[..., Any]
    # open_run(experiment, run_id): the comparison panel with that run selected; None (or no
    # callable) when there is none to show, and the panel says where the run is instead.
    open_run: Callable[[str, str], Any] | None = None

    def refused(self, info: Any) -> bool:
        """Whether ``info``'s run ended so that promoting it needs confirming anyway."""
        return info.run_status in self.refused_statuses


__all__ = ["RegistrySource"]
