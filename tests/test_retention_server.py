"""nbtrack.usage and nbtrack.gc against a real ``mlflow server`` with proxied artifacts
(``mlflow-artifacts:``): sizes listed through the server, files and logged models deleted
through it, the same answers as on the embedded store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nbtrack
from tests import modelkit
from tests.support import mlflow_server
from tests.test_retention import EXP, _seed


@pytest.fixture
def served(tmp_path, template_db, monkeypatch):
    """A server whose artifacts live in ``tmp_path/served`` and are reached only through it."""
    db = tmp_path / "mlflow.db"
    shutil.copy(template_db, db)
    artifacts = tmp_path / "served"
    args = ["--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(artifacts)]
    with mlflow_server(tmp_path, args) as (url, _):
        monkeypatch.setenv("NBTRACK_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
        import mlflow

        mlflow.set_tracking_uri(url)
        yield {"url": url, "artifacts": artifacts}


def _served_bytes(root: Path, run_or_model: str) -> dict[str, int]:
    found = [p for p in root.rglob(run_or_model) if p.is_dir()]
    return {
        str(p.relative_to(d)): p.stat().st_size for d in found for p in d.rglob("*") if p.is_file()
    }


def test_gc_through_a_tracking_server_with_proxied_artifacts(served, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(served["url"])
    runs = _seed(client, tmp_path, runs=6, checkpoints=2)["runs"]
    assert client.get_run(runs[0]).info.artifact_uri.startswith("mlflow-artifacts:")
    mlflow.set_experiment(EXP)
    with mlflow.start_run(run_id=runs[0]):
        model_id = modelkit.log_sklearn(modelkit.model(1.0)).model_id
    root = served["artifacts"]
    before = {r: _served_bytes(root, r) for r in runs}
    model_bytes = sum(_served_bytes(root, model_id).values())
    assert model_bytes > 0

    usage = nbtrack.usage(EXP)
    assert usage.total == sum(sum(b.values()) for b in before.values()) + model_bytes

    done = nbtrack.gc(EXP, keep_top=2, metric="val_acc", apply=True)
    gone = sum(
        size
        for r in runs[:4]
        for path, size in before[r].items()
        if not path.startswith("artifacts/nbtrack/")
    )
    assert done.bytes_freed == gone + model_bytes
    for r in runs[:4]:
        assert [f.path for f in client.list_artifacts(r)] == ["nbtrack"]
    for r in runs[4:]:
        assert _served_bytes(root, r) == before[r]
    assert sum(_served_bytes(root, model_id).values()) == 0
    assert client.search_logged_models([client.get_run(runs[0]).info.experiment_id]) == []
    assert nbtrack.gc(EXP, keep_top=2, metric="val_acc", apply=True).bytes_freed == 0
