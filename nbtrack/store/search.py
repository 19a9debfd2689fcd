"""Finding runs: by id, by experiment and MLflow filter, by tags.

Every search goes through one pager (``search_runs_page``) and every tag match through one filter
(``tag_filter``); what comes back is ``RunView``s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlflow.exceptions import MlflowException

from nbtrack import record
from nbtrack.errors import NotFound, UsageError
from nbtrack.record import RunView
from nbtrack.store.connection import _first_line, client, translated
from nbtrack.store.runs import get_run
from nbtrack.store.views import run_view

# Runs per search request. MLflow's SQL store accepts up to 50,000, but a tracking server caps a
# page at 1,000 by default and a first page of 1,000 shows something within a second.
SEARCH_PAGE = 1000

OLDEST_FIRST = ("attributes.start_time ASC",)

# MLflow takes at most 100 experiment ids in one search.
_IDS_PER_SEARCH = 100


def search_runs_page(
    experiment_ids: Sequence[str],
    filter_string: str = "",
    order_by: Sequence[str] = (),
    max_results: int | None = None,
    page_token: str | None = None,
) -> tuple[list[RunView], str | None]:
    """One page of runs and the token of the next page (None at the end).

    A filter MLflow cannot read is the user's mistake (UsageError), not a store failure."""
    c = client()
    with translated("search runs"):
        try:
            page = c.search_runs(
                list(experiment_ids),
                filter_string=filter_string or "",
                order_by=list(order_by) or None,
                max_results=max_results or SEARCH_PAGE,
                page_token=page_token,
            )
        except MlflowException as e:
            if getattr(e, "error_code", "") == "INVALID_PARAMETER_VALUE":
                what = f"the filter {filter_string or ''!r}"
                if order_by:
                    what += f" / order_by {list(order_by)}"
                raise UsageError(
                    f"MLflow cannot read {what}: {_first_line(e.message)}",
                    "see https://mlflow.org/docs/latest/search-runs.html for the syntax",
                ) from None
            raise
    return [run_view(r) for r in page], page.token or None


def search_all_runs(
    experiment_ids: Sequence[str],
    filter_string: str = "",
    order_by: Sequence[str] = OLDEST_FIRST,
    max_results: int | None = None,
) -> list[RunView]:
    """Every run of the experiments matching ``filter_string`` (at most ``max_results``), oldest
    first by default, all pages."""
    ids = list(experiment_ids)
    out: list[RunView] = []
    for i in range(0, len(ids), _IDS_PER_SEARCH):
        token = None
        while True:
            want = None if max_results is None else min(SEARCH_PAGE, max_results - len(out))
            page, token = search_runs_page(
                ids[i : i + _IDS_PER_SEARCH], filter_string, order_by, want, token
            )
            out += page
            if token is None or (max_results is not None and len(out) >= max_results):
                break
    return out


def tag_filter(tags: Mapping[str, str]) -> str:
    """An MLflow filter matching runs that carry every tag of ``tags``."""

    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " and ".join(f"tags.`{k}` = {quoted(v)}" for k, v in tags.items())


def runs_by_id(run_ids: Sequence[str]) -> list[RunView]:
    """The runs ``run_ids``, in the order given; NotFound names the first unknown id."""
    return [get_run(run_id) for run_id in run_ids]


def experiment_ids_by_name(names: Sequence[str]) -> dict[str, str]:
    """Name -> id of existing, active experiments; NotFound names the first one missing."""
    c = client()
    out = {}
    with translated("look up experiments"):
        for name in names:
            exp = c.get_experiment_by_name(name)
            if exp is None or exp.lifecycle_stage == "deleted":
                raise NotFound("experiment", name, "check the name (mlflow experiments search)")
            out[name] = exp.experiment_id
    return out


def runs_in_experiment(
    name: str, filter_string: str | None = None, max_results: int = 1000
) -> list[RunView]:
    """Runs of experiment ``name`` matching an MLflow filter string, oldest first."""
    c = client()
    with translated(f"search runs of experiment {name!r}"):
        exp = c.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage == "deleted":
        raise NotFound("experiment", name, "check the name, or pass run ids")
    return search_all_runs([exp.experiment_id], filter_string or "", max_results=max_results)


def runs_with_tags(
    experiment_ids: Sequence[str], tags: Mapping[str, str], max_results: int = 1000
) -> list[RunView]:
    """Runs of the experiments carrying every tag of ``tags``, oldest first."""
    return search_all_runs(experiment_ids, tag_filter(tags), max_results=max_results)


def running_runs(host: str) -> list[RunView]:
    """Runs still RUNNING that were started on ``host`` (candidates for orphans)."""
    with translated("look for unfinished runs"):
        exp_ids = [e.experiment_id for e in client().search_experiments(max_results=1000)]
    if not exp_ids:
        return []
    running = "attributes.status = 'RUNNING' and " + tag_filter({record.TAG_HOST: host})
    return search_all_runs(exp_ids, running, order_by=())
