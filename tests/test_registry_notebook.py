"""notebooks/04-registry.ipynb passes strict nbval twice in a row against one store (as the nbval
run of `make test` does with its persistent store): it removes its own demo model first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from support import ROOT


def test_registry_notebook_passes_strict_nbval_twice_against_one_store(store, tmp_path):
    nb = tmp_path / "04-registry.ipynb"
    shutil.copy(ROOT / "notebooks" / "04-registry.ipynb", nb)
    env = {**os.environ, "NBTRACK_TRACKING_URI": store}
    for attempt in (1, 2):
        result = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval"),
                *(str(nb), "--nbval-sanitize-with", str(ROOT / "nbtrack" / "nbval_sanitize.cfg")),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=nb.parent,
            timeout=600,
        )
        assert result.returncode == 0, f"run {attempt}:\n{result.stdout[-3000:]}"
    from mlflow import MlflowClient

    client = MlflowClient(store)
    assert str(client.get_model_version_by_alias("digits-demo", "production").version) == "1"
