"""Shared fixtures: a real MLflow SQLite store per test, and real kernels to run notebooks in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _main_module_restored():
    """An in-process IPython shell (test_shell, test_register_cell) puts its own module in
    ``sys.modules["__main__"]`` and leaves it there; later tests read pytest's own."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """An empty MLflow database, migrated once per session: a new one costs ~2 s of migrations,
    and copying the file gives every test its own store for free."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    code = (
        "import mlflow, sys; mlflow.set_tracking_uri('sqlite:///' + sys.argv[1]); "
        "mlflow.MlflowClient().search_experiments()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True)
    return path


@pytest.fixture
def store(tmp_path, template_db, monkeypatch) -> str:
    """A fresh store for this test; nbtrack, MLflow and child kernels all write to it."""
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("NBTRACK_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    # A run's end waits for MLflow this long before it is ended in the background: tests that
    # read a run's status right after its cell get the synchronous answer on a busy machine.
    # tests/test_durable_metrics.py sets the default (1 s) back, to test the background end.
    monkeypatch.setenv("NBTRACK_END_WAIT", "60")
    monkeypatch.delenv("NBTRACK_EXPERIMENT", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    for name in list(os.environ):
        if name.startswith("NBTRACK_RUNNER_"):
            monkeypatch.delenv(name)
    import mlflow

    mlflow.set_tracking_uri(uri)
    # MLflow's fluent API remembers the last set_experiment of the process; an id from another
    # test's store would not exist in this one.
    mlflow.set_experiment(experiment_id="0")
    return uri


@pytest.fixture
def client(store):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store)


def pytest_collection_modifyitems(config, items):
    """Browser tests last: playwright's sync API keeps an asyncio loop running in the main thread
    for the rest of the session, and IPython's top-level await (tests/test_shell.py) cannot run
    on a loop that is already running."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))


@pytest.fixture
def shell(store):
    """An in-process IPython shell with nbtrack loaded (the anywidget way of testing a magic)."""
    from IPython.core.interactiveshell import InteractiveShell

    from nbtrack import settings

    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext nbtrack", store_history=True)
    yield ip
    ip.run_cell("%unload_ext nbtrack")
    settings.set_session_defaults({})
    InteractiveShell.clear_instance()
