"""Runs as a table: one run flattened to a row (Record), the rows as a DataFrame, and the public
``nbtrack.runs`` on top of the cached query (query.cache) and the local filter (query.filters).

(Not ``nbtrack/runs.py``: the submodule would replace the public function ``nbtrack.runs``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePath

from nbtrack.errors import UsageError
from nbtrack.query.cache import RunQuery, cache_for

# -- from the user's arguments to a query ------------------------------------------------------


def default_experiment() -> str:
    """The experiment a ``%%track`` cell here would write to: %track_config's, NBTRACK_EXPERIMENT,
    MLFLOW_EXPERIMENT_NAME, else the notebook's name."""
    import sys

    from nbtrack import settings

    configured = settings.session_defaults().get("experiment")
    if configured:
        return configured
    s = settings.current()
    if s.experiment:
        return s.experiment
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from nbtrack.capture.notebook import known_notebook

        path = known_notebook(getattr(shell, "user_ns", {}) or {})
        if path:
            return PurePath(path).stem
    raise UsageError("no experiment given", 'name one: nbtrack.compare("digits")')


def query_for(
    experiment: str | Sequence[str] | None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    include_repro_byproducts: bool = False,
) -> tuple[RunQuery, dict[str, str]]:
    """The query and its experiments (id -> name) for the public functions' arguments."""
    from nbtrack import store

    store.configure()
    if experiment is None:
        names = [default_experiment()]
    elif isinstance(experiment, str):
        names = [experiment]
    else:
        names = list(experiment)
    if max_runs is not None and max_runs < 1:
        raise UsageError(f"max_runs must be at least 1, got {max_runs}", "e.g. max_runs=1000")
    ids = store.experiment_ids_by_name(names)
    order = (order_by,) if isinstance(order_by, str) else tuple(order_by or ())
    query = RunQuery(
        experiment_ids=tuple(ids.values()),
        filter=(filter or "").strip(),
        # The order only changes which runs are fetched when they are capped.
        order_by=order if max_runs is not None else (),
        max_runs=max_runs,
        include_repro_byproducts=bool(include_repro_byproducts),
    )
    return query, {v: k for k, v in ids.items()}


# -- the public entry point --------------------------------------------------------------------


def runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    full: bool = False,
    on_page: Callable[[int], None] | None = None,
    include_repro_byproducts: bool = False,
):
    """The runs table of ``nbtrack.runs`` (see there), from the kernel's cache, refreshed."""
    from nbtrack.query import compare

    query, names = query_for(experiment, filter, order_by, max_runs, include_repro_byproducts)
    cache = cache_for(query, names)
    if not cache.complete:
        for n in cache.pages():
            if on_page is not None:
                on_page(n)
    else:
        cache.refresh(full=full)
    return compare.sort_frame(cache.frame(), compare.parse_order(order_by)).reset_index(drop=True)
