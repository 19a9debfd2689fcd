"""``nbtrack.inference``: a serving loop's inference run. Each ``predict`` returns the model's
output at once; its rows are written (part file, artifact, index) by a background thread, a few
batches behind at most, so memory stays bounded and the loop does not wait on MLflow."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from nbtrack.provenance import references
from nbtrack.provenance.inference import Batch, InferenceRun, prepare

_log = logging.getLogger(__name__)

MAX_QUEUED = 8  # batches waiting to be written; a ninth call waits for the writer


class Inference:
    """``with nbtrack.inference("digits-clf@production") as inf: inf.predict(batch, ids=...)``"""

    def __init__(
        self, model: Any, experiment: str | None = None, batch_name: str | None = None
    ) -> None:
        self.resolved = references.resolve(model)
        self.model = model if not isinstance(model, str) else references.load(self.resolved)
        self._run = InferenceRun(self.resolved, experiment=experiment, batch_name=batch_name)
        self._queue: queue.Queue[Batch | None] = queue.Queue(MAX_QUEUED)
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def run_id(self) -> str | None:
        return self._run.run_id

    @property
    def count(self) -> int:
        """Predictions written so far."""
        return self._run.count

    def __enter__(self) -> Inference:
        self._run.open()
        self._thread = threading.Thread(
            target=self._write_loop, name="nbtrack-inference", daemon=True
        )
        self._thread.start()
        return self

    def predict(self, data: Any, ids: Any = None) -> Any:
        """The model's output for ``data``; its rows are recorded in the background."""
        if self._thread is None:
            raise RuntimeError("use nbtrack.inference(...) in a with-block")
        self._raise_failure()
        output, batch = prepare(self.model, data, ids)
        self._queue.put(batch)
        return output

    def _write_loop(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain: the caller hears of the failure at its next call or the end
            try:
                self._run.write(batch)
            except BaseException as e:
                _log.warning("writing an inference batch failed", exc_info=True)
                self._failure = e

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._thread is not None
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        if self._failure is not None and exc is None:
            self._run.close("FAILED")
            raise self._failure
        # Batches written before an exception in the loop are predictions that were made: kept.
        self._run.close("FINISHED" if exc is None else "FAILED")
