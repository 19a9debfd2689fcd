"""``nbtrack.audit_prediction``: one prediction id -> the model version, the aliases it held then,
its training run, data, code and notebook, the input row's hash and the output.

The id is found in the prediction index (``store.prediction_index``); a miss first reads in the
inference runs the index does not hold yet (made on another machine, or before the index
existed), then answers or says how many inference runs were searched.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import record as R
from nbtrack import settings, store
from nbtrack.errors import NotFound, PredictionNotFound
from nbtrack.html_text import escape
from nbtrack.provenance import alias_history
from nbtrack.provenance.labels import experiment_label, iso_utc
from nbtrack.store import prediction_index

_log = logging.getLogger(__name__)

READ_IN_THREADS = 4  # fetching prediction files: I/O-bound, a request each against a server


@dataclass(frozen=True)
class PredictionAudit:
    """What made one prediction."""

    prediction_id: str
    timestamp: str  # ISO 8601 UTC
    model_name: str
    model_version: str
    model_uri: str
    aliases_then: tuple[str, ...]  # the aliases the version held when it predicted
    aliases_source: str  # "audit trail" or "recorded at the inference run's start"
    alias_named: str | None  # the alias the caller wrote (name@alias)
    inference_run: str
    inference_experiment: str
    training_run: str | None
    training_experiment: str | None
    data_hash: str | None
    datasets: dict[str, str] = field(default_factory=dict)  # training input name -> digest
    git_commit: str | None = None
    notebook: str | None = None
    snapshot: str | None = None  # runs:/<training run>/nbtrack/notebook.ipynb
    input_row_hash: str = ""
    output: Any = None
    also_in: tuple[str, ...] = ()  # other inference runs that used the same id (newest first)

    @property
    def model_label(self) -> str:
        return f"{self.model_name} v{self.model_version}" if self.model_name else self.model_uri

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["aliases_then"] = list(self.aliases_then)
        out["also_in"] = list(self.also_in)
        return out

    def _lines(self) -> list[tuple[str, str]]:
        then = ", ".join(self.aliases_then) or "none"
        lines = [
            ("prediction", self.prediction_id),
            ("time", self.timestamp),
            (
                "model",
                self.model_label,
            ),
            ("aliases then", f"{then} ({self.aliases_source})"),
            ("inference run", f"{self.inference_run} (experiment {self.inference_experiment})"),
            ("training run", self.training_run or "unknown"),
            ("data hash", self.data_hash or "none recorded"),
        ]
        lines += [(f"  data: {name}", digest) for name, digest in sorted(self.datasets.items())]
        lines += [
            ("git commit", self.git_commit or "none recorded"),
            ("notebook", self.notebook or "none recorded"),
            ("snapshot", self.snapshot or "none"),
            ("input row hash", self.input_row_hash),
            ("output", repr(self.output)),
        ]
        if self.alias_named:
            lines.insert(4, ("called as", f"{self.model_name}@{self.alias_named}"))
        if self.also_in:
            lines.append(("same id also in", ", ".join(self.also_in)))
        return lines

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self._lines())
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in self._lines())

    def __repr__(self) -> str:
        return f"<nbtrack prediction audit {self.prediction_id!r}: {self.model_label}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{escape(k)}</th>"
            f"<td><code>{escape(v)}</code></td></tr>"
            for k, v in self._lines()
        )
        return f"<table class='nbtrack-audit'>{rows}</table>"


def normal_id(prediction_id: Any) -> str:
    if isinstance(prediction_id, float) and prediction_id.is_integer():
        prediction_id = int(prediction_id)
    return str(prediction_id)


def audit_prediction(prediction_id: Any) -> PredictionAudit:
    store.configure()
    pid = normal_id(prediction_id)
    uri = store.tracking_uri()
    hits = _live(prediction_index.lookup(uri, pid))
    if not hits:
        searched = read_in(uri, pid)
        hits = _live(prediction_index.lookup(uri, pid))
        if not hits:
            raise PredictionNotFound(pid, searched)
    hit, inference = hits[0]
    return _answer(pid, hit, inference, tuple(h.run_id for h, _ in hits[1:]))


def _live(hits: list[prediction_index.Hit]) -> list[tuple[prediction_index.Hit, R.RunView]]:
    """Hits whose inference run still exists (not deleted), with the run."""
    out = []
    runs: dict[str, R.RunView | None] = {}
    for hit in hits:
        if hit.run_id not in runs:
            try:
                run = store.get_run(hit.run_id)
                runs[hit.run_id] = run if run.lifecycle_stage != "deleted" else None
            except NotFound:
                runs[hit.run_id] = None
        if runs[hit.run_id] is not None:
            out.append((hit, runs[hit.run_id]))
    return out


def may_hold(run: R.RunView, prediction_id: str) -> bool:
    """Whether ``prediction_id`` is within the run's id range (its tags, written when it closed:
    a zone map, as Parquet keeps per row group); a run without them (open, or older) may."""
    low, high = run.tags.get(R.TAG_PREDICTIONS_MIN_ID), run.tags.get(R.TAG_PREDICTIONS_MAX_ID)
    if low is None or high is None:
        return True
    return low <= prediction_id <= high


def read_in(uri: str, wanted: str | None = None) -> int:
    """Index the part files of inference runs the index lacks (with ``wanted``: only those whose
    id range holds it); returns how many inference runs the store has. Files are listed and
    fetched by a few threads (each a request to a tracking server); the rows go into the index
    from this one."""
    from concurrent.futures import ThreadPoolExecutor

    runs = store.inference_runs()
    known = prediction_index.indexed_parts(uri)
    todo = [r for r in runs if not known.get(r.run_id, (set(), False))[1]]
    if wanted is not None:
        todo = [r for r in todo if may_hold(r, wanted)]

    def fetch(run: R.RunView) -> list[tuple[int, Any]]:
        parts = known.get(run.run_id, (set(), False))[0]
        tables = []
        for path in store.artifact_files(run.run_id, R.ARTIFACT_PREDICTIONS_DIR):
            number = _part_number(path)
            if number is None or number in parts:
                continue
            table = _part_table(run.run_id, number, columns=["prediction_id", "timestamp"])
            if table is not None:
                tables.append((number, table))
        return tables

    done = []
    with ThreadPoolExecutor(max_workers=READ_IN_THREADS) as pool:
        for run, tables in zip(todo, pool.map(fetch, todo), strict=True):
            for number, table in tables:
                prediction_index.add(
                    uri,
                    run.run_id,
                    number,
                    table.column("prediction_id").to_pylist(),
                    table.column("timestamp").to_pylist(),
                )
            if run.status in ("FINISHED", "FAILED", "KILLED"):
                done.append(run.run_id)
    prediction_index.mark_complete(uri, done)
    return len(runs)


def _part_number(path: str) -> int | None:
    stem = Path(path).name
    if not (stem.startswith("part-") and stem.endswith(".parquet")):
        return None
    digits = stem[len("part-") : -len(".parquet")]
    return int(digits) if digits.isdigit() else None


def _part_path(run_id: str, number: int) -> Path | None:
    """A part file, downloaded once into the state dir's cache (a part never changes)."""
    cache = settings.current().state_dir / "cache" / "predictions" / run_id
    name = f"part-{number:05d}.parquet"
    target = cache / name
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        got = store.download_file(run_id, f"{R.ARTIFACT_PREDICTIONS_DIR}/{name}", Path(tmp))
        if got is None or not got.is_file():
            return None
        os.replace(got, target)  # whole or not at all: a reader never sees half a file
    return target


def _part_table(run_id: str, number: int, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    path = _part_path(run_id, number)
    return None if path is None else pq.read_table(path, columns=columns)


def _answer(pid: str, hit, inference: R.RunView, also: tuple[str, ...]) -> PredictionAudit:
    table = _part_table(hit.run_id, hit.part)
    row = table.slice(hit.row, 1).to_pylist()[0] if table is not None else {}
    if row.get("prediction_id") not in (None, pid):
        _log.warning(
            "prediction index row %s of %s holds %r", hit.row, hit.run_id, row.get("prediction_id")
        )
    outputs = {k: v for k, v in row.items() if k == "output" or k.startswith("output.")}
    output = outputs.get("output", outputs or None)
    params, tags = inference.params, inference.tags
    name = params.get(R.PARAM_MODEL_NAME, "")
    version = params.get(R.PARAM_MODEL_VERSION, "")
    when = int(row.get("timestamp") or hit.ts)
    then = alias_history.aliases_at(name, version, when) if name else None
    source = "audit trail"
    if then is None:
        recorded = tags.get(R.TAG_INFERENCE_ALIASES, "")
        then, source = (
            [a for a in recorded.split(",") if a],
            "recorded at the inference run's start",
        )
    training = _training_run(tags.get(R.TAG_PARENT_RUN))
    return PredictionAudit(
        prediction_id=pid,
        timestamp=iso_utc(when),
        model_name=name,
        model_version=version,
        model_uri=params.get(R.PARAM_MODEL_URI, ""),
        aliases_then=tuple(then),
        aliases_source=source,
        alias_named=tags.get(R.TAG_INFERENCE_ALIAS) or None,
        inference_run=inference.run_id,
        inference_experiment=experiment_label(inference.experiment_id),
        training_run=tags.get(R.TAG_PARENT_RUN) or None,
        training_experiment=experiment_label(training.experiment_id) if training else None,
        data_hash=training.data_hash if training else None,
        datasets=dict(training.datasets) if training else {},
        git_commit=training.commit if training else None,
        notebook=training.notebook if training else None,
        snapshot=_snapshot(training),
        input_row_hash=str(row.get("row_hash", "")),
        output=output,
        also_in=also,
    )


def _snapshot(training: R.RunView | None) -> str | None:
    """Where the training notebook's snapshot is, when nbtrack tracked the run (it stores one)."""
    if training is None or R.TAG_CELL_SHA256 not in training.tags:
        return None
    return f"runs:/{training.run_id}/{R.ARTIFACT_NOTEBOOK}"


def _training_run(run_id: str | None) -> R.RunView | None:
    if not run_id:
        return None
    try:
        return store.get_run(run_id)
    except NotFound:
        return None
