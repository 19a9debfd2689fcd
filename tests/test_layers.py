"""The import layers in pyproject ([tool.importlinter]) hold; a planted violation fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(src_root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH picks which copy of nbtrack grimp reads; the config is the worktree's pyproject.
    env = {**os.environ, "PYTHONPATH": str(src_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_hold() -> None:
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_planted_mlflow_import_in_widgets_fails(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "nbtrack", tmp_path / "nbtrack")
    card = tmp_path / "nbtrack" / "widgets" / "card.py"
    card.write_text("import mlflow  # planted\n" + card.read_text())
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "only nbtrack.store imports mlflow BROKEN" in proc.stdout


def test_planted_upward_import_fails(tmp_path: Path) -> None:
    # The query side reaching up into the notebook frontend is the kind of break the layers stop.
    shutil.copytree(ROOT / "nbtrack", tmp_path / "nbtrack")
    table = tmp_path / "nbtrack" / "query" / "table.py"
    table.write_text("import nbtrack.frontends.magic  # planted\n" + table.read_text())
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "nbtrack.query is not allowed to import nbtrack.frontends" in proc.stdout
