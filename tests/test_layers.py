"""The import layers in pyproject ([tool.importlinter]) hold; a planted violation fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        # only store talks to MLflow
        ("widgets/card.py", "import mlflow", "only nbtrack.store imports mlflow BROKEN"),
        # the query side reaching up into the notebook frontend
        (
            "query/table.py",
            "import nbtrack.frontends.magic",
            "nbtrack.query is not allowed to import nbtrack.frontends",
        ),
    ],
)
def test_a_planted_violation_fails(tmp_path: Path, module: str, planted: str, broken: str) -> None:
    shutil.copytree(ROOT / "nbtrack", tmp_path / "nbtrack")
    target = tmp_path / "nbtrack" / module
    target.write_text(f"{planted}  # planted\n" + target.read_text())
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0
    assert broken in proc.stdout
