"""A fresh embedded store for a benchmark, its database created before anything is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fresh_store(folder: str | Path) -> str:
    """``sqlite:///FOLDER/mlflow.db``, migrated once in a separate process: MLflow's first-time
    schema migration is not what a benchmark measures, and it races when parallel workers
    create the same new database."""
    uri = f"sqlite:///{Path(folder)}/mlflow.db"
    code = f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return uri
