"""``nbtrack registry list``, ``promote``, ``rollback``, ``archive``, ``audit``: the registry
outside notebooks (CI), in-process through ``cli.main`` and once as the installed command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from modelkit import train_run

import nbtrack
from nbtrack.frontends import cli


@pytest.fixture
def digits(store):
    for c in (0.01, 1.0):
        nbtrack.register(train_run(C=c), "digits")
    return "digits"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_promote_rollback_audit(digits, client, capsys):
    code, out, _ = run(capsys, "registry", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "model",
        "production",
        "staging",
        "previous",
        "latest",
        "updated",
        "(UTC)",
    ]
    assert row.split()[:5] == ["digits", "-", "-", "-", "2"]

    assert run(capsys, "promote", "digits", "1")[1] == "version 1 of digits is now in production\n"
    code, out, _ = run(capsys, "promote", "digits", "2", "--stage", "production", "--reason", "ci")
    assert (code, out) == (0, "version 2 of digits is now in production (was version 1)\n")
    assert str(client.get_model_version_by_alias("digits", "production").version) == "2"
    assert run(capsys, "registry", "list")[1].splitlines()[1].split()[:5] == [
        "digits",
        "2",
        "-",
        "1",
        "2",
    ]

    code, out, _ = run(capsys, "rollback", "digits", "--reason", "smoke test failed")
    assert (code, out) == (0, "version 1 of digits is now in production (was version 2)\n")

    code, out, _ = run(capsys, "audit", "digits")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["when", "(UTC)", "who", "action"]
    assert [line.split()[2] for line in lines[1:]] == [
        "register",
        "register",
        "promote",
        "promote",
        "rollback",
    ]
    assert lines[-1].split()[-6:] == ["2", "->", "1", "smoke", "test", "failed"]

    code, out, _ = run(capsys, "audit", "digits", "--json", "--limit", "1")
    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record["action"], record["from_version"], record["to_version"]) == (
        "rollback",
        "2",
        "1",
    )

    code, out, _ = run(capsys, "registry", "show", "digits")
    assert out.startswith("nbtrack model digits @ models:/digits@production: version 1")


def test_errors_are_one_line_and_exit_2(digits, capsys):
    code, out, err = run(capsys, "rollback", "digits")
    assert (code, out) == (2, "")
    assert err == (
        "nbtrack: model 'digits' has no previous production version to roll back to; promote a "
        "version with nbtrack.promote(name, version)\n"
    )
    code, _, err = run(capsys, "promote", "nope", "1")
    assert code == 2 and err.startswith("nbtrack: no registered model 'nope'")
    code, _, err = run(capsys, "promote", "digits", "9")
    assert code == 2 and "its versions are: 1, 2" in err
    code, _, err = run(capsys, "archive", "digits", "1", "--reason", "old")
    assert code == 0


def test_the_installed_command(digits, store):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbtrack.frontends.cli",
            "promote",
            "digits",
            "2",
            "--stage",
            "staging",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "version 2 of digits is now in staging\n"
    assert "Warning" not in done.stderr  # no MLflow deprecation noise on a CI log
