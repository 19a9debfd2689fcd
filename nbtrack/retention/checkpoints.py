"""``nbtrack.checkpoint``, ``nbtrack.checkpoints``, ``nbtrack.load_checkpoint``: checkpoints as
MLflow 3 LoggedModels of the run, with their step and the metrics MLflow links to them.

How an object is saved, by its type: a torch module with MLflow's pytorch flavour, a torch state
dict with ``torch.save`` (loaded back with ``torch.load``), a scikit-learn estimator with the
sklearn flavour. For torch the loop pays a copy (the state dict's tensors copied to the CPU, a
module deep-copied); the LoggedModel is made and its files written by this process's checkpoint
thread (the run's experiment is looked up once per run). A model is READY only once its files
and metrics are in: one a killed kernel left half-written stays PENDING and is never listed or
loaded.

``keep=N`` (ranked ``by`` a metric, else by step) drops the other checkpoints of the run as soon
as a newer one is ready: their files are deleted, their LoggedModel stays, tagged
``dropped: <why>``, so ``checkpoints`` shows the whole history. (MLflow's own deleted stage would
hide the record from every public read, history included.)
"""

from __future__ import annotations

import atexit
import copy
import logging
import math
import numbers
import queue
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from nbtrack import record, store
from nbtrack.capture.redaction import nbtrack_tags, nbtrack_text
from nbtrack.errors import NotFound, UsageError
from nbtrack.record import ModelFilesView

_log = logging.getLogger(__name__)

STATE_READY = "ready"
STATE_WRITING = "writing"
DROPPED = "dropped: "
COLUMNS = ["step", "model_id", "uri", "bytes", "kept", "why", "format"]


class Saved:
    """A checkpoint being written: ``wait()`` returns once it is READY (or failed);
    ``model_id`` and ``uri`` once its LoggedModel exists (the writer makes it)."""

    def __init__(self, run_id: str, step: int) -> None:
        self.run_id, self.step = run_id, step
        self._model_id: str | None = None
        self._made = threading.Event()

    @property
    def model_id(self) -> str | None:
        self._made.wait(60.0)
        return self._model_id

    @property
    def uri(self) -> str | None:
        model_id = self.model_id
        return f"models:/{model_id}" if model_id else None

    def wait(self, timeout: float | None = 60.0) -> bool:
        return _writer.wait(self.run_id, timeout)

    def __repr__(self) -> str:
        return f"<checkpoint step {self.step} of run {self.run_id}>"


class _Writer:
    """This process's checkpoint thread: writes run one at a time, in order."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._pending: dict[str, int] = {}
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, run_id: str, job: Callable[[], None]) -> None:
        with self._done:
            self._pending[run_id] = self._pending.get(run_id, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="nbtrack-checkpoints", daemon=True
                )
                self._thread.start()
        self._jobs.put((run_id, job))

    def _loop(self) -> None:
        while True:
            run_id, job = self._jobs.get()
            try:
                job()
            finally:
                with self._done:
                    self._pending[run_id] -= 1
                    self._done.notify_all()

    def wait(self, run_id: str | None = None, timeout: float | None = 60.0) -> bool:
        """Until the run's (every run's, for None) checkpoints are written; False on timeout."""

        def idle() -> bool:
            if run_id is None:
                return not any(self._pending.values())
            return not self._pending.get(run_id)

        with self._done:
            return self._done.wait_for(idle, timeout)


_writer = _Writer()
atexit.register(_writer.wait, None, 120.0)


_experiments: dict[str, str] = {}  # run id -> experiment id: asked once per run


def _run_ids(run_id: str | None) -> tuple[str, str]:
    """(run id, experiment id) of the run named, else of the tracked (or MLflow-active) run."""
    if run_id is None:
        from nbtrack.tracking import tracker

        active = tracker.active()
        run_id = getattr(active, "run_id", None) or store.active_run_id()
    if not run_id:
        raise UsageError(
            "nbtrack.checkpoint needs a run and none is active",
            "call it inside a %%track cell (or an mlflow.start_run() block)",
        )
    if run_id not in _experiments:
        _experiments[run_id] = store.get_run(run_id).experiment_id
    return run_id, _experiments[run_id]


def _prepared(obj: object) -> tuple[str, object]:
    """(format, what the writer saves): the copy the loop pays for torch."""
    kind = type(obj).__module__.split(".")[0]
    if kind == "torch" or _is_torch_module(obj):
        import torch

        if isinstance(obj, torch.nn.Module):
            return "pytorch", copy.deepcopy(obj).to("cpu")
    if isinstance(obj, Mapping) and obj and _all_tensors(obj):
        return "state_dict", {k: v.detach().to("cpu", copy=True) for k, v in obj.items()}
    if kind == "sklearn":
        return "sklearn", obj
    raise UsageError(
        f"nbtrack.checkpoint cannot save a {type(obj).__name__}",
        "pass a torch module, a torch state dict or a scikit-learn estimator",
    )


def _is_torch_module(obj: object) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


def _all_tensors(obj: Mapping) -> bool:
    return all(
        type(v).__module__.startswith("torch") and hasattr(v, "detach") for v in obj.values()
    )


def checkpoint(
    obj: object,
    step: int,
    metrics: Mapping[str, float] | None = None,
    keep: int | None = None,
    by: str | None = None,
    mode: str = "max",
    name: str = "checkpoint",
    run_id: str | None = None,
) -> Saved:
    metrics = dict(metrics or {})
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise UsageError(f"a checkpoint's step must be a whole number >= 0, not {step!r}", "")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise UsageError(f"keep must be a whole number >= 1, not {keep!r}", "e.g. keep=3")
    if mode not in ("max", "min"):
        raise UsageError(f"mode must be 'max' or 'min', not {mode!r}", "min for a loss")
    if by is not None and by not in metrics:
        raise UsageError(
            f"by={by!r} is not among this checkpoint's metrics ({', '.join(metrics) or 'none'})",
            f"pass metrics={{{by!r}: value}}",
        )
    for k, v in metrics.items():
        if not isinstance(v, (int, float)) or math.isnan(float(v)):
            raise UsageError(f"the checkpoint metric {k!r} is not a number: {v!r}", "")
    run, exp_id = _run_ids(run_id)
    fmt, payload = _prepared(obj)
    tags = {
        record.TAG_CHECKPOINT_STEP: int(step),
        record.TAG_CHECKPOINT_STATE: STATE_WRITING,
        record.TAG_CHECKPOINT_FORMAT: fmt,
    }
    if by:
        tags[record.TAG_CHECKPOINT_BY] = f"{by} {mode}"
    saved = Saved(run, int(step))

    def write() -> None:
        _write(saved, exp_id, fmt, payload, tags, metrics, keep, by, mode, name)

    if fmt == "sklearn":
        write()  # an estimator may change after the call (warm_start): written before returning
    else:
        _writer.submit(run, write)
    return saved


def _write(saved: Saved, exp_id, fmt, payload, tags, metrics, keep, by, mode, name) -> None:
    run_id, step, model_id = saved.run_id, saved.step, None
    try:
        try:
            model_id, _ = store.create_model(
                exp_id, nbtrack_text(f"{name}-{step}"), run_id, nbtrack_tags(tags), "checkpoint"
            )
            saved._model_id = model_id
        finally:
            saved._made.set()
        with tempfile.TemporaryDirectory(prefix="nbtrack-ckpt-") as tmp:
            folder = Path(tmp) / "model"
            if fmt == "state_dict":
                import torch

                folder.mkdir()
                torch.save(payload, folder / "state_dict.pt")
            else:
                store.save_flavour(fmt, payload, folder)
            store.upload_model_files(model_id, folder)
        store.link_metrics(run_id, model_id, metrics, step)
        store.finalize_model(model_id, ok=True)
        _state(model_id, STATE_READY)
    except Exception:
        _log.warning("nbtrack: checkpoint %s of run %s was not saved", step, run_id, exc_info=True)
        try:
            if model_id:
                store.finalize_model(model_id, ok=False)
        except Exception:
            _log.debug("could not mark checkpoint %s FAILED", model_id, exc_info=True)
        return
    if keep:
        try:
            _prune(run_id, exp_id, keep, by, mode)
        except Exception:
            _log.warning("nbtrack: keep=%s of run %s failed", keep, run_id, exc_info=True)


def _state(model_id: str, state: str) -> None:
    store.set_logged_model_tags(model_id, nbtrack_tags({record.TAG_CHECKPOINT_STATE: state}))


def _ready(exp_id: str, run_id: str) -> list[ModelFilesView]:
    """The run's checkpoints that are whole: READY, written by nbtrack.checkpoint."""
    return [
        m
        for m in store.models_of_experiments([exp_id], run_id)
        if record.TAG_CHECKPOINT_STEP in m.tags and m.status.upper().endswith("READY")
    ]


def _step(m: ModelFilesView) -> int:
    return int(m.tags.get(record.TAG_CHECKPOINT_STEP, "0"))


def _ranked(models: list[ModelFilesView], by: str | None, mode: str) -> list[ModelFilesView]:
    """Best first: by the metric (missing values last), else the newest step first."""
    if not by:
        return sorted(models, key=_step, reverse=True)
    sign = -1 if mode == "max" else 1
    return sorted(
        models,
        key=lambda m: (by not in m.metrics, sign * m.metrics.get(by, 0.0), -_step(m)),
    )


def _prune(run_id: str, exp_id: str, keep: int, by: str | None, mode: str) -> None:
    live = [m for m in _ready(exp_id, run_id) if not _dropped(m)]
    why = f"{DROPPED}not in the best {keep} by {by}" if by else f"{DROPPED}not in the last {keep}"
    for m in _ranked(live, by, mode)[keep:]:
        _state(m.model_id, why)  # said first: a listing never offers it with its files going
        store.delete_model_files(m)


def _dropped(m: ModelFilesView) -> bool:
    return m.tags.get(record.TAG_CHECKPOINT_STATE, "").startswith(DROPPED)


def checkpoints(run_id: str | None = None):
    """The run's checkpoints as a DataFrame, by step: model id, URI, bytes, kept (False once
    keep=N dropped it), why, format, and one column per metric linked to it."""
    import pandas as pd

    run, exp_id = _run_ids(run_id)
    _writer.wait(run)
    rows = []
    for m in _ready(exp_id, run):
        dropped = _dropped(m)
        rows.append(
            {
                "step": _step(m),
                "model_id": m.model_id,
                "uri": m.model_uri,
                "bytes": 0 if dropped else sum(s for _, s in store.model_files(m)),
                "kept": not dropped,
                "why": m.tags.get(record.TAG_CHECKPOINT_STATE, "") if dropped else "",
                "format": m.tags.get(record.TAG_CHECKPOINT_FORMAT, ""),
                **m.metrics,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def load_checkpoint(
    run_id: str | None = None, which: str | int = "best", by: str | None = None
) -> object:
    """Load one of the run's kept checkpoints: "best" (by ``by``, else the metric keep ranked
    by), "last", or a step."""
    run, exp_id = _run_ids(run_id)
    _writer.wait(run)
    live = [m for m in _ready(exp_id, run) if not _dropped(m)]
    if not live:
        raise NotFound("checkpoint", f"of run {run}", "save one with nbtrack.checkpoint(...)")
    chosen = _choose(live, which, by, run)
    fmt = chosen.tags.get(record.TAG_CHECKPOINT_FORMAT, "pytorch")
    if fmt != "state_dict":
        return store.load_model(chosen.model_uri, fmt)
    import torch

    with tempfile.TemporaryDirectory(prefix="nbtrack-ckpt-") as tmp:
        folder = store.download_model(chosen.artifact_location, tmp)
        return torch.load(folder / "state_dict.pt", map_location="cpu", weights_only=True)


def _choose(live: list[ModelFilesView], which: str | int, by: str | None, run: str):
    if which == "last":
        return max(live, key=_step)
    if which == "best":
        metric, mode = by, "max"
        ranked_by = next(
            (m.tags[record.TAG_CHECKPOINT_BY] for m in live if record.TAG_CHECKPOINT_BY in m.tags),
            "",
        )
        if ranked_by:
            tag_metric, tag_mode = ranked_by.rsplit(" ", 1)
            metric = metric or tag_metric
            mode = tag_mode if metric == tag_metric else mode
        if not metric:
            raise UsageError(
                "'best' needs a metric and these checkpoints were not ranked by one",
                "pass by='val_acc', or ask for 'last' or a step",
            )
        return _ranked(live, metric, mode)[0]
    if isinstance(which, int) and not isinstance(which, bool):
        for m in live:
            if _step(m) == which:
                return m
        steps = ", ".join(str(s) for s in sorted(_step(m) for m in live))
        raise NotFound("checkpoint", f"step {which} of run {run}", f"kept steps: {steps}")
    raise UsageError(f"which={which!r} names no checkpoint", "use 'best', 'last' or a step")
