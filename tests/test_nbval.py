"""Users run tracked notebooks under strict `pytest --nbval` in their CI: the run cards must not
break output comparison, twice in a row against one store, and with tracking switched off."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from support import ROOT


def _nbval(nb, env) -> subprocess.CompletedProcess:
    cfg = subprocess.run(
        [sys.executable, "-m", "nbtrack.frontends.cli", "nbval-sanitize"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval"),
            *(str(nb), "--nbval-sanitize-with", cfg),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=nb.parent,
    )


def test_tracked_notebook_passes_strict_nbval_twice_and_untracked(store, tmp_path):
    nb = tmp_path / "nbval_tracked.ipynb"
    shutil.copy(ROOT / "tests" / "notebooks" / "nbval_tracked.ipynb", nb)
    env = {**os.environ, "NBTRACK_TRACKING_URI": store}
    for attempt in (1, 2):
        result = _nbval(nb, env)
        assert result.returncode == 0, f"run {attempt}:\n{result.stdout[-3000:]}"
    from mlflow import MlflowClient

    exp = MlflowClient(store).get_experiment_by_name("nbval-ci")
    assert len(MlflowClient(store).search_runs([exp.experiment_id])) == 4

    # CI without a store: the cells run untracked, and the notebook still compares equal
    off = _nbval(nb, {**env, "NBTRACK_DISABLE": "1"})
    assert off.returncode == 0, off.stdout[-3000:]


def test_quickstart_passes_strict_nbval_twice(store, tmp_path):
    nb = tmp_path / "01-quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "01-quickstart.ipynb", nb)
    env = {**os.environ, "NBTRACK_TRACKING_URI": store}
    for attempt in (1, 2):
        result = _nbval(nb, env)
        assert result.returncode == 0, f"run {attempt}:\n{result.stdout[-3000:]}"
