"""``nbtrack.lineage``: the connected graph dataset -> training run -> model version (with its
alias history) -> inference runs (-> a prediction), from any of its nodes.

Nodes and edges are plain dicts (``to_dict`` is JSON-ready); the facade hands the object the view
that draws it (a widget in JupyterLab, inline SVG in a saved notebook)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbtrack import record as R
from nbtrack import store
from nbtrack.errors import NotFound, UsageError
from nbtrack.provenance import alias_history
from nbtrack.provenance.labels import experiment_label

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_log = logging.getLogger(__name__)

KINDS = ("dataset", "run", "version", "inference", "prediction")


@dataclass
class Lineage:
    """The graph: ``nodes`` (id -> node dict), ``edges`` (dicts: source, target, kind)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)
    focus: str | None = None
    view: Callable[[Lineage], dict] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"focus": self.focus, "nodes": list(self.nodes.values()), "edges": list(self.edges)}

    def ids(self, kind: str) -> list[str]:
        """The nodes of one kind: run ids for runs and inference runs, ``NAME/N`` for versions,
        digests for datasets, prediction ids for predictions."""
        return [n["key"] for n in self.nodes.values() if n["kind"] == kind]

    @property
    def training_runs(self) -> list[str]:
        return self.ids("run")

    @property
    def versions(self) -> list[str]:
        return self.ids("version")

    @property
    def inference_runs(self) -> list[str]:
        return self.ids("inference")

    @property
    def datasets(self) -> list[str]:
        return self.ids("dataset")

    def __str__(self) -> str:
        counts = ", ".join(f"{len(self.ids(k))} {k}" for k in KINDS if self.ids(k))
        return f"lineage: {counts or 'nothing found'} ({len(self.edges)} links)"

    def __repr__(self) -> str:
        return f"<nbtrack {self}>"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        if self.view is not None:
            return self.view(self)
        return {"text/plain": str(self)}

    # -- building --------------------------------------------------------------------------------

    def node(
        self, kind: str, key: str, label: str, detail: dict[str, Any], run_id: str | None = None
    ) -> str:
        node_id = f"{kind}:{key}"
        if node_id not in self.nodes:
            clean = {k: "" if v is None else str(v) for k, v in detail.items()}
            self.nodes[node_id] = {
                "id": node_id,
                "kind": kind,
                "key": key,
                "label": label,
                "detail": clean,
                "run_id": run_id,
            }
        return node_id

    def edge(self, source: str, target: str, kind: str) -> None:
        item = {"source": source, "target": target, "kind": kind}
        if item not in self.edges:
            self.edges.append(item)


class _Builder:
    """Walks the store from one node, up and down, adding what it finds once."""

    def __init__(self) -> None:
        self.graph = Lineage()
        self._runs_seen: set[str] = set()
        self._versions_seen: set[tuple[str, str]] = set()

    # -- nodes -----------------------------------------------------------------------------------

    def training_run(self, run: R.RunView, *, down: bool = True) -> str:
        g = self.graph
        node = g.node(
            "run",
            run.run_id,
            run.name or run.run_id[:8],
            {
                "experiment": experiment_label(run.experiment_id),
                "status": run.status,
                "data hash": run.data_hash,
                "commit": run.commit,
                "notebook": run.notebook,
                "user": run.user,
            },
            run.run_id,
        )
        if run.run_id in self._runs_seen:
            return node
        self._runs_seen.add(run.run_id)
        for name, digest in sorted(run.datasets.items()):
            g.edge(
                g.node("dataset", digest, name, {"digest": digest, "name": name}),
                node,
                "trained_on",
            )
        if not run.datasets and run.data_hash:
            data = g.node("dataset", run.data_hash, "data", {"data hash": run.data_hash})
            g.edge(data, node, "trained_on")
        if down:
            for v in store.versions_of_run(run.run_id):
                self.version(v.name, v.version, up=False, down=True, run_node=node)
        return node

    def version(
        self, name: str, number: str, *, up: bool, down: bool, run_node: str | None = None
    ) -> str:
        g = self.graph
        mv = store.model_version(name, number)
        if mv is None:
            raise NotFound("version", f"{name}/{number}")
        spans = alias_history.version_history(name, number)
        history = "; ".join(f"{s['alias']} {s['from']} -> {s['to'] or 'now'}" for s in spans)
        node = g.node(
            "version",
            f"{name}/{number}",
            f"{name} v{number}",
            {
                "aliases now": ", ".join(mv.aliases),
                "alias history": history or "none recorded",
                "run": mv.run_id,
                "source": mv.source,
            },
            mv.run_id,
        )
        if (name, number) in self._versions_seen:
            return node
        self._versions_seen.add((name, number))
        if up and mv.run_id and run_node is None:
            try:
                run_node = self.training_run(store.get_run(mv.run_id), down=False)
            except NotFound:
                _log.info("version %s/%s: run %s is gone", name, number, mv.run_id)
        if run_node is not None:
            g.edge(run_node, node, "registered_as")
        if down:
            for run in store.inference_runs(name, number):
                g.edge(node, self.inference(run, up=False), "served")
        return node

    def inference(self, run: R.RunView, *, up: bool) -> str:
        g = self.graph
        p = run.params
        node = g.node(
            "inference",
            run.run_id,
            run.name or run.run_id[:8],
            {
                "experiment": experiment_label(run.experiment_id),
                "predictions": p.get(R.PARAM_N_PREDICTIONS, "?"),
                "started": p.get(R.PARAM_INFERENCE_TIMESTAMP),
                "aliases then": run.tags.get(R.TAG_INFERENCE_ALIASES),
                "input hash": p.get(R.PARAM_INPUT_DATA_HASH),
                "status": run.status,
            },
            run.run_id,
        )
        name, number = p.get(R.PARAM_MODEL_NAME), p.get(R.PARAM_MODEL_VERSION)
        if up and name and number:
            try:
                g.edge(self.version(name, number, up=True, down=False), node, "served")
            except NotFound:
                _log.info("inference run %s: version %s/%s is gone", run.run_id, name, number)
        elif up and run.tags.get(R.TAG_PARENT_RUN):
            try:
                parent = store.get_run(run.tags[R.TAG_PARENT_RUN])
                g.edge(self.training_run(parent, down=False), node, "served")
            except NotFound:
                _log.info("inference run %s: its training run is gone", run.run_id)
        return node


def lineage(target: Any = None, *, version: Any = None, data_hash: str | None = None) -> Lineage:
    """See ``nbtrack.lineage``."""
    from nbtrack.model_registry.names import version_of

    store.configure()
    b = _Builder()
    g = b.graph
    if data_hash:
        digest = str(data_hash).strip()
        found = store.runs_of_data(digest)
        for run in found:
            if run.tags.get(R.TAG_KIND) != R.KIND_INFERENCE:
                b.training_run(run)
        g.focus = next((n for n in g.nodes if n.startswith("dataset:")), None)
        return g
    if target is None:
        raise UsageError(
            "nbtrack.lineage needs something to start from",
            "pass a model name (and version=), a run id, a prediction id, or data_hash=...",
        )
    text = str(target).strip()
    if version is not None:
        g.focus = b.version(text, version_of(version), up=True, down=True)
        return g
    if _RUN_ID.match(text):
        try:
            run = store.get_run(text)
        except NotFound:
            run = None
        if run is not None:
            if run.tags.get(R.TAG_KIND) == R.KIND_INFERENCE:
                g.focus = b.inference(run, up=True)
            else:
                g.focus = b.training_run(run)
            return g
    if store.registered_model(text) is not None:
        versions = sorted(store.model_versions(text), key=lambda v: int(v.version))
        for v in versions:
            b.version(text, v.version, up=True, down=True)
        g.focus = f"version:{text}/{versions[-1].version}" if versions else None
        return g
    from nbtrack.provenance import audit

    found = audit.audit_prediction(text)  # PredictionNotFound says how many runs were searched
    run = store.get_run(found.inference_run)
    inf = b.inference(run, up=True)
    pred = g.node(
        "prediction",
        found.prediction_id,
        found.prediction_id,
        {"time": found.timestamp, "row hash": found.input_row_hash, "output": repr(found.output)},
        found.inference_run,
    )
    g.edge(inf, pred, "predicted")
    g.focus = pred
    return g
