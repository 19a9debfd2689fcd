"""Inference runs: ``nbtrack.predict`` (one call, one run) and ``nbtrack.inference`` (a serving
loop: one run, batches appended).

A call checks everything it can before MLflow sees anything (the model resolves and loads, the ids
fit the rows, the model predicts), so bad input records no half run; a failure after the run was
created removes it (MLflow's deleted stage) and its rows from the prediction index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack import record as R
from nbtrack import store
from nbtrack.capture.redaction import nbtrack_tags, nbtrack_text
from nbtrack.errors import NotFound
from nbtrack.provenance import rows
from nbtrack.provenance.references import ResolvedModel
from nbtrack.store import prediction_index
from nbtrack.tracking.snapshot import process_tags

_log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One call's rows, ready to write: everything but the run it goes to."""

    ids: list[str]
    row_hashes: Any  # uint64 per row
    output: dict  # Arrow columns
    frame: Any  # the input as a DataFrame (for the profile)
    ts: int  # ms

    def table(self):
        import pyarrow as pa

        n = len(self.ids)
        columns = {
            "prediction_id": pa.array(self.ids, pa.string()),
            "row_hash": pa.array(rows.hex_hashes(self.row_hashes), pa.string()),
            "timestamp": pa.array([self.ts] * n, pa.int64()),
            **self.output,
        }
        return pa.table(columns)


def prepare(model: Any, data: Any, ids: Any) -> tuple[Any, Batch]:
    """Check the ids, predict, and hash: (what the model returned, the batch to record)."""
    n = rows.row_count(data)
    checked = rows.ids_for(ids, n)
    output = model.predict(data)
    frame = rows.frame_of(data)
    batch = Batch(
        ids=checked,
        row_hashes=rows.row_hashes(frame),
        output=rows.output_table(output, n),
        frame=frame,
        ts=int(time.time() * 1000),
    )
    return output, batch


def _iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class InferenceRun:
    """One inference run in MLflow: opened, batches written, closed with its digests."""

    def __init__(
        self,
        resolved: ResolvedModel,
        *,
        experiment: str | None = None,
        batch_name: str | None = None,
    ) -> None:
        self.resolved = resolved
        self.experiment = experiment
        self.batch_name = batch_name
        self.store_uri = store.tracking_uri()
        self.run_id: str | None = None
        self.started = int(time.time() * 1000)
        self.parts = 0
        self.count = 0
        self._input_hash = hashlib.sha256()
        self._predictions_hash = hashlib.sha256()
        self._profile = rows.Profile()

    # -- opening ---------------------------------------------------------------------------------

    def _experiment_id(self) -> str:
        if self.experiment:
            return store.experiment_id(self.experiment)
        if self.resolved.run_id:
            try:
                return store.get_run(self.resolved.run_id).experiment_id
            except NotFound:
                _log.info(
                    "training run %s is gone; inference run goes to 'inference'", exc_info=True
                )
        return store.experiment_id("inference")

    def open(self) -> str:
        m = self.resolved
        held = _aliases_held(m)
        tags = {
            R.TAG_KIND: R.KIND_INFERENCE,
            R.TAG_INFERENCE_STATUS: "open",
            R.TAG_INFERENCE_ALIASES: ",".join(held),
            **process_tags(),
        }
        if m.run_id:
            tags[R.TAG_PARENT_RUN] = m.run_id
        if m.alias:
            tags[R.TAG_INFERENCE_ALIAS] = m.alias
        name = f"{R.INFERENCE_RUN_PREFIX}{_iso(self.started)}"
        self.run_id = store.create_run(
            self._experiment_id(), nbtrack_text(name), nbtrack_tags(tags)
        )
        params = {
            R.PARAM_MODEL_NAME: m.name,
            R.PARAM_MODEL_VERSION: m.version,
            R.PARAM_MODEL_URI: m.uri,
            R.PARAM_INFERENCE_TIMESTAMP: _iso(self.started),
        }
        store.log_params_tags(self.run_id, nbtrack_tags({k: v for k, v in params.items() if v}))
        return self.run_id

    # -- writing a batch -------------------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        """The batch's part file logged, then indexed (the index never names a missing file)."""
        import pyarrow.parquet as pq

        assert self.run_id is not None, "open the run first"
        part = self.parts
        with tempfile.TemporaryDirectory(prefix="nbtrack-predictions-") as tmp:
            path = Path(tmp, f"part-{part:05d}.parquet")
            pq.write_table(batch.table(), path, compression="zstd")
            store.log_artifact_dir(self.run_id, tmp, R.ARTIFACT_PREDICTIONS_DIR)
        prediction_index.add(self.store_uri, self.run_id, part, batch.ids, batch.ts)
        self.parts += 1
        self.count += len(batch.ids)
        self._input_hash.update(bytes.fromhex(rows.digest_of_hashes(batch.row_hashes)))
        self._predictions_hash.update(bytes.fromhex(rows.predictions_digest(batch.output)))
        self._profile.add(batch.frame)

    # -- closing ---------------------------------------------------------------------------------

    def digests(self) -> tuple[str, str]:
        """(input digest, predictions digest). One batch: the sha256 over its rows' hashes; several:
        the sha256 over the batches' digests, in order."""
        return self._input_hash.hexdigest(), self._predictions_hash.hexdigest()

    def close(self, status: str = "FINISHED") -> None:
        assert self.run_id is not None
        input_digest, predictions_digest = self.digests()
        store.log_params_tags(
            self.run_id,
            nbtrack_tags(
                {
                    R.PARAM_N_PREDICTIONS: str(self.count),
                    R.PARAM_INPUT_DATA_HASH: input_digest,
                    R.PARAM_PREDICTIONS_HASH: predictions_digest,
                }
            ),
            nbtrack_tags({R.TAG_INFERENCE_STATUS: "closed"}),
        )
        store.log_files(
            self.run_id,
            {nbtrack_text(R.ARTIFACT_INPUT_PROFILE): nbtrack_text(self._profile.json())},
        )
        store.log_dataset_input(
            self.run_id,
            name=nbtrack_text(self.batch_name or f"inference-input-{input_digest[:8]}"),
            digest=input_digest,
            source=nbtrack_text(self.batch_name or "in-memory data passed to nbtrack.predict"),
            context=R.INFERENCE_CONTEXT,
            profile={"rows": self.count},
        )
        store.terminate_run(self.run_id, status)
        prediction_index.mark_complete(self.store_uri, [self.run_id])

    def discard(self) -> None:
        """Remove a run that could not be completed (deleted stage) and its index rows."""
        if self.run_id is None:
            return
        prediction_index.forget(self.store_uri, self.run_id)
        try:
            store.delete_run(self.run_id)
        except Exception:  # the store is down: the run stays, RUNNING, for orphan closing
            _log.warning(
                "could not remove the half-made inference run %s", self.run_id, exc_info=True
            )


def _aliases_held(m: ResolvedModel) -> list[str]:
    """The aliases the version holds now (recorded on the run: the registry may change later)."""
    if not m.name:
        return []
    rm = store.registered_model(m.name)
    if rm is None:
        return []
    return sorted(a for a, v in rm.aliases.items() if str(v) == m.version)


def predict(
    model: Any,
    data: Any,
    ids: Any = None,
    experiment: str | None = None,
    batch_name: str | None = None,
) -> Any:
    """Predict with ``model`` and record one inference run; returns what the model returns."""
    from nbtrack.provenance import references

    resolved = references.resolve(model)
    loaded = model if not isinstance(model, str) else references.load(resolved)
    output, batch = prepare(loaded, data, ids)
    run = InferenceRun(resolved, experiment=experiment, batch_name=batch_name)
    try:
        run.open()
        run.write(batch)
        run.close()
    except BaseException:
        run.discard()
        raise
    return output
