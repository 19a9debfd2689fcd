"""Inference runs: ``nbtrack.predict`` (one call, one run) and ``nbtrack.inference`` (a serving
loop: one run, batches appended).

A call checks everything it can before MLflow sees anything (the model resolves and loads, the ids
fit the rows, the model predicts), so bad input records no half run; a failure after the run was
created removes it (MLflow's deleted stage) and its rows from the prediction index.
"""

from __future__ import annotations

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
from nbtrack.provenance.labels import iso_utc
from nbtrack.provenance.references import ResolvedModel
from nbtrack.store import prediction_index
from nbtrack.tracking.snapshot import process_tags

_log = logging.getLogger(__name__)

MAX_ZONE_ID = 1000  # longer ids are not written as the run's id-range tags


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
        self._input_digests: list[str] = []  # one per batch (32 bytes each: bounded enough)
        self._predictions_digests: list[str] = []
        self._profile = rows.Profile()
        self._params_logged = False
        self._id_range: tuple[str, str] | None = None
        self._profile_logged = False

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

    def open(self, *, params_now: bool = True) -> str:
        """Create the run; ``params_now=False`` leaves the model's params for ``close`` (one
        request fewer when the whole run is one batch)."""
        m = self.resolved
        held = m.aliases_held
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
        name = f"{R.INFERENCE_RUN_PREFIX}{iso_utc(self.started)}"
        self.run_id = store.create_run(
            self._experiment_id(), nbtrack_text(name), nbtrack_tags(tags)
        )
        if params_now:
            store.log_params_tags(self.run_id, nbtrack_tags(self._model_params()))
            self._params_logged = True
        return self.run_id

    def _model_params(self) -> dict[str, str]:
        m = self.resolved
        params = {
            R.PARAM_MODEL_NAME: m.name,
            R.PARAM_MODEL_VERSION: m.version,
            R.PARAM_MODEL_URI: m.uri,
            R.PARAM_INFERENCE_TIMESTAMP: iso_utc(self.started),
        }
        return {k: v for k, v in params.items() if v}

    # -- writing a batch -------------------------------------------------------------------------

    def write(self, batch: Batch, *, with_profile: bool = False) -> None:
        """The batch's part file logged, then indexed (the index never names a missing file);
        ``with_profile``: the input's profile goes up in the same request (a one-batch run)."""
        import pyarrow.parquet as pq

        assert self.run_id is not None, "open the run first"
        part = self.parts
        self._input_digests.append(rows.digest_of_hashes(batch.row_hashes))
        self._predictions_digests.append(rows.predictions_digest(batch.output))
        self._profile.add(batch.frame)
        with tempfile.TemporaryDirectory(prefix="nbtrack-predictions-") as tmp:
            path = Path(tmp, R.ARTIFACT_PREDICTIONS_DIR, f"part-{part:05d}.parquet")
            path.parent.mkdir(parents=True)
            pq.write_table(batch.table(), path, compression="zstd")
            if with_profile:
                Path(tmp, R.ARTIFACT_INPUT_PROFILE).write_text(self._profile.json())
                self._profile_logged = True
            store.log_artifact_dir(self.run_id, tmp, "")
        prediction_index.add(self.store_uri, self.run_id, part, batch.ids, batch.ts)
        low, high = min(batch.ids), max(batch.ids)
        self._id_range = (
            (low, high)
            if self._id_range is None
            else (min(self._id_range[0], low), max(self._id_range[1], high))
        )
        self.parts += 1
        self.count += len(batch.ids)

    # -- closing ---------------------------------------------------------------------------------

    def digests(self) -> tuple[str, str]:
        """(input digest, predictions digest). One batch: the sha256 over its rows' hashes (and
        over its outputs); several: the sha256 over the batches' digests, in order."""

        def combined(digests: list[str]) -> str:
            if len(digests) == 1:
                return digests[0]
            return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()

        return combined(self._input_digests), combined(self._predictions_digests)

    def close(self, status: str = "FINISHED") -> None:
        assert self.run_id is not None
        input_digest, predictions_digest = self.digests()
        params = {} if self._params_logged else self._model_params()
        params.update(
            {
                R.PARAM_N_PREDICTIONS: str(self.count),
                R.PARAM_INPUT_DATA_HASH: input_digest,
                R.PARAM_PREDICTIONS_HASH: predictions_digest,
            }
        )
        tags = {R.TAG_INFERENCE_STATUS: "closed"}
        if self._id_range and max(map(len, self._id_range)) <= MAX_ZONE_ID:
            # The run's id range: a lookup on a machine whose index lacks this run reads its files
            # only when the id may be among them.
            tags[R.TAG_PREDICTIONS_MIN_ID], tags[R.TAG_PREDICTIONS_MAX_ID] = self._id_range
        store.log_params_tags(self.run_id, nbtrack_tags(params), nbtrack_tags(tags))
        if not self._profile_logged:
            profile = {nbtrack_text(R.ARTIFACT_INPUT_PROFILE): nbtrack_text(self._profile.json())}
            store.log_files(self.run_id, profile)
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
        run.open(params_now=False)
        run.write(batch, with_profile=True)
        run.close()
    except BaseException:
        run.discard()
        raise
    return output
