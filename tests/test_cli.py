"""The ``nbtrack`` command as a user meets it: help texts, and one error line for a mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest


def nbtrack(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbtrack.frontends.cli", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_top_level_help_describes_the_tool_not_the_module():
    out = nbtrack("--help")
    assert out.returncode == 0
    assert "experiment tracking on MLflow" in out.stdout
    assert "parses, calls the core" not in out.stdout


@pytest.mark.parametrize("command", ["nbval-sanitize", "close-orphans", "store"])
def test_every_command_has_a_description_in_its_help(command):
    out = nbtrack(command, "--help")
    assert out.returncode == 0
    description = out.stdout.split("\n\n")[1]  # usage, blank line, description
    assert not description.startswith("options:") and len(description.split()) >= 5


def test_an_unknown_model_is_one_line_on_stderr(store):
    import os

    out = nbtrack("registry", "show", "nosuch", env=dict(os.environ))
    assert out.returncode != 0
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nosuch" in lines[0]
