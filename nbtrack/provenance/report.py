"""``nbtrack audit-report NAME``: the compliance report of a model version, one standalone HTML
page (inline CSS and SVG, no script, nothing fetched when it is opened).

For the production version (or the one asked for) it answers what an auditor asks: which data
the model was trained on (digests and sources), at which commit, from which notebook (and where
its snapshot is), in which environment, with which params and metrics, whether the training run
was reproduced and with which verdict, every registry move of the model (who, when, why), and
the inference runs the version served (how many predictions, over which span of time); the
lineage graph at the end. Every value is escaped with ``html_text.escape``: run names, params,
reasons and paths are the users'.

Reading is split from drawing: ``facts`` gathers plain values from the store, ``render`` turns
them into the page; a test reads either.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from nbtrack import record as R
from nbtrack import store
from nbtrack.errors import NbtrackError, NotFound, UsageError
from nbtrack.model_registry import registry as models
from nbtrack.provenance.labels import experiment_label
from nbtrack.provenance.report_page import render, utc

_log = logging.getLogger(__name__)


# -- gathering ----------------------------------------------------------------------------------


def _json(run_id: str, path: str) -> Any:
    text = store.artifact_text(run_id, path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        _log.debug("%s of run %s is not JSON", path, run_id, exc_info=True)
        return None


def _artifact_link(run: R.RunView, path: str) -> str:
    return f"{run.artifact_uri.rstrip('/')}/{path}"


def _training(run: R.RunView, run_page: str | None) -> dict[str, Any]:
    """What the training run recorded: data, code, notebook, environment, params, metrics."""
    try:
        files = set(store.artifact_files(run.run_id, "nbtrack"))
    except NbtrackError:
        _log.debug("listing the artifacts of run %s failed", run.run_id, exc_info=True)
        files = set()
    data = _json(run.run_id, R.ARTIFACT_DATA) if R.ARTIFACT_DATA in files else None
    env = _json(run.run_id, R.ARTIFACT_ENVIRONMENT) if R.ARTIFACT_ENVIRONMENT in files else None
    reqs = store.artifact_text(run.run_id, R.ARTIFACT_REQUIREMENTS)
    return {
        "run": run,
        "experiment": experiment_label(run.experiment_id),
        "datasets": dict(sorted(run.datasets.items())),
        "data_files": data if isinstance(data, list) else [],
        "environment": env if isinstance(env, dict) else {},
        "requirements": [line for line in (reqs or "").splitlines() if line.strip()],
        "notebook_snapshot": (
            _artifact_link(run, R.ARTIFACT_NOTEBOOK) if R.ARTIFACT_NOTEBOOK in files else None
        ),
        "git_diff": R.ARTIFACT_GIT_DIFF in files,
        "run_page": run_page,  # a tracking server's artifacts are mlflow-artifacts: URIs
    }


def _inference(name: str, number: str) -> dict[str, Any]:
    """The version's inference runs (of every experiment) with their totals and time span."""

    runs = store.inference_runs(name, number)
    total, known = 0, True
    for r in runs:
        try:
            total += int(r.params.get(R.PARAM_N_PREDICTIONS, ""))
        except ValueError:
            known = False  # a serving loop still open has not said its count yet
    starts = [r.start_time for r in runs if r.start_time]
    ends = [r.end_time or r.start_time for r in runs if r.end_time or r.start_time]
    return {
        "runs": runs,
        "experiments": {i: experiment_label(i) for i in {r.experiment_id for r in runs}},
        "predictions": total,
        "all_counted": known,
        "first": utc(min(starts)) if starts else "",
        "last": utc(max(ends)) if ends else "",
    }


def _graph(name: str, number: str) -> dict[str, Any] | None:
    from nbtrack.provenance import graph

    try:
        return graph.lineage(name, version=number).to_dict()
    except NbtrackError:  # the report stands without its picture
        _log.debug("the lineage graph of %s/%s failed", name, number, exc_info=True)
        return None


def facts(name: str, version: Any = None) -> dict[str, Any]:
    """Everything the report says, as plain values: the version (``models.version``), its
    training run's record, reproductions, the audit trail, inference runs, the graph."""
    store.configure()
    number = models.production(name).version if version is None else version
    info = models.version(name, number)  # NotFound names the versions that exist
    run = None
    if info.run_id:
        try:
            run = store.get_run(info.run_id)
        except NotFound:
            _log.info("version %s/%s: its run %s is gone", name, info.version, info.run_id)
    repros = (
        store.runs_everywhere(store.tag_filter({R.TAG_REPRODUCES: run.run_id}))
        if run is not None
        else []
    )
    return {
        "name": name,
        "version": info,
        "asked": "production" if version is None else f"version {info.version}",
        "training": _training(run, models.run_url(info)) if run is not None else None,
        "reproductions": repros,
        "moves": models.audit_records(name),
        "inference": _inference(name, info.version),
        "graph": _graph(name, info.version),
        "store": store.safe_uri(store.tracking_uri()),
        "made": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def audit_report(name: str, version: Any = None) -> str:
    """The compliance report of model ``name`` (its production version, or ``version``) as one
    standalone HTML page."""
    return render(facts(name, version))


def default_path(name: str, version: str) -> str:
    """Where the report goes when no path is given: ``<NAME>-v<N>-audit.html``, the name made
    safe for a file name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "model"
    return f"{safe}-v{version}-audit.html"


def write(name: str, version: Any = None, out: str | None = None) -> str:
    """Write the report to ``out`` (default ``default_path``); returns the path written."""
    f = facts(name, version)
    path = out or default_path(name, f["version"].version)
    page = render(f)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as e:
        raise UsageError(
            f"cannot write the audit report to {path}: {e.strerror or e}", "choose another --out"
        ) from None
    return path


__all__ = ["audit_report", "default_path", "facts", "render", "write"]
