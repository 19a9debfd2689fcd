"""Re-execute notebooks and store their outputs, for strict nbval.

    python scripts/refresh_notebooks.py notebooks/01-quickstart.ipynb [...]

Each notebook runs in a fresh kernel against a throwaway store, with JPY_SESSION_NAME set as
JupyterLab would set it, and is saved in place. nbval then compares later runs to these outputs
(run cards and learning curves are sanitized by nbtrack's nbval sanitize file).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def refresh(path: Path, store: str) -> None:
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "JPY_SESSION_NAME": str(path), "NBTRACK_TRACKING_URI": store}
    # A notebook whose outputs depend on whether the kernel knows its path (05-reproduce: a run
    # recorded without the notebook is rebuilt from the kernel's history) says so in its
    # metadata, and is refreshed the way nbval runs it: without a session name.
    if nb.metadata.get("nbtrack", {}).get("refresh_without_session"):
        del env["JPY_SESSION_NAME"]
    # Saved widget state is not compared by nbval and a plotly FigureWidget's carries plotly.js.
    client = NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False)
    client.execute(env=env, cwd=str(path.parent))
    nbformat.write(nb, path)
    print(f"refreshed {path}")


def main(paths: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="nbtrack-refresh-") as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        for p in paths:
            refresh(Path(p).resolve(), store)


if __name__ == "__main__":
    main(sys.argv[1:])
