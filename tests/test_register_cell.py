"""``%%track --register NAME``: the model a cell logged becomes a version once the cell finished;
a cell that logged none stops the notebook with one sentence; a failed cell registers nothing.
In an in-process shell, and once in a real kernel under papermill."""

from __future__ import annotations

import nbformat
import pytest
from support import all_runs, outputs_text

from nbtrack.frontends import magic, track_line

TRAIN = """\
import mlflow
from modelkit import log_sklearn, model
C = {c}
log_sklearn(model(C))
mlflow.log_metric("val_acc", {acc})
"""


@pytest.fixture
def shell(shell, monkeypatch):
    """conftest's in-process shell, without the card and live curves (read at each cell)."""
    monkeypatch.setenv("NBTRACK_CARD", "0")
    monkeypatch.setenv("NBTRACK_LIVE", "0")
    return shell


def test_a_tracked_cell_registers_its_model(shell, client):
    result = shell.run_cell(
        "%%track -e cells --register digits\n" + TRAIN.format(c=1.0, acc=0.9), store_history=True
    )
    assert result.success, result.error_in_exec
    [run] = all_runs(client, "cells")
    mv = client.get_model_version("digits", "1")
    assert mv.run_id == run.info.run_id and mv.tags["val_acc"] == "0.9"
    assert magic.__name__ and shell.user_ns["C"] == 1.0  # the cell's namespace as usual


def test_a_cell_that_logged_no_model_fails_with_one_sentence(shell, client, capsys):
    result = shell.run_cell("%%track -e cells --register digits\nx = 1", store_history=True)
    assert not result.success
    [run] = all_runs(client, "cells")
    assert run.info.status == "FINISHED"  # the user's work is recorded all the same
    err = capsys.readouterr().err
    assert err == (
        f"UsageError: --register: run {run.info.run_id} logged no model, so nothing was "
        "registered as 'digits'; log one in the cell, e.g. "
        "mlflow.sklearn.log_model(model, name='model')\n"
    )
    assert client.search_registered_models() == []


def test_a_failed_cell_registers_nothing(shell, client):
    code = "%%track -e cells --register digits\n" + TRAIN.format(c=1.0, acc=0.9) + "1 / 0\n"
    result = shell.run_cell(code, store_history=True)
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert all_runs(client, "cells")[0].info.status == "FAILED"
    assert client.search_registered_models() == []


def test_register_is_per_cell_not_a_session_default(shell):
    result = shell.run_cell("%track_config --register digits")
    assert "--register names one cell's model" in str(result.error_in_exec)


def test_parse_line_reads_register():
    assert track_line.parse_line("--register digits -e x").cell.register == "digits"
    assert track_line.parse_line("-e x").cell.register is None


def test_papermill_stops_at_a_cell_that_was_to_register_and_logged_no_model(store, tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_code_cell("%%track -e pm --register digits --no-live\nx = 1"),
        nbformat.v4.new_code_cell("print('after')"),
    ]
    nbformat.write(nb, tmp_path / "r.ipynb")
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(tmp_path / "r.ipynb"),
            str(tmp_path / "o.ipynb"),
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp_path),
        )
    assert err.value.exec_count == 2
    out = nbformat.read(tmp_path / "o.ipynb", as_version=4)
    [tracked] = [c for c in out.cells if c.source.startswith("%%track")]
    text = outputs_text(tracked)
    assert "UsageError: --register: run " in text and "nothing was registered as 'digits'" in text
    assert all("after" not in outputs_text(c) for c in out.cells)
