"""MLflow code the user writes inside a tracked cell (issue #12, item 2): ``mlflow.start_run()``
joins the tracked run, nested runs are its children in its experiment, autologging lands in it,
and a cell that works untracked does not fail tracked. In-process IPython shell; the same in a
real kernel is in tests/realworld."""

from __future__ import annotations

import os

import pytest
from support import all_runs


@pytest.fixture
def shell(shell):
    shell.run_cell("import mlflow", store_history=True)
    return shell


def run(ip, code: str):
    result = ip.run_cell(code, store_history=True)
    assert result.success, result.error_in_exec
    return result


def test_with_start_run_joins_the_tracked_run(shell, client):
    run(
        shell,
        "%%track -e join --no-card\n"
        "with mlflow.start_run(run_name='mine', tags={'team': 'a'}) as r:\n"
        "    mlflow.log_param('alpha', 0.5)\n"
        "    mlflow.log_metric('rmse', 0.25)\n"
        "inside = r.info.run_id\n"
        "still = mlflow.active_run().info.run_id\n"
        "mlflow.log_metric('after_with', 1.0)",
    )
    [r] = all_runs(client, "join")
    assert r.info.status == "FINISHED"
    assert shell.user_ns["inside"] == shell.user_ns["still"] == r.info.run_id
    assert r.info.run_name == "mine" and r.data.tags["team"] == "a"
    assert r.data.params["alpha"] == "0.5"
    assert r.data.metrics["rmse"] == 0.25 and r.data.metrics["after_with"] == 1.0
    assert r.data.tags.get("nbtrack.cell.sha256")  # nbtrack's record is the same run
    assert shell.user_ns["mlflow"].active_run() is None  # the cell's end ended it


def test_end_run_inside_the_cell_leaves_the_cell_to_end_it(shell, client):
    run(
        shell,
        "%%track -e endrun --no-card\n"
        "mlflow.start_run()\nmlflow.log_metric('m', 1)\nmlflow.end_run()\n"
        "mlflow.log_metric('later', 2)",
    )
    [r] = all_runs(client, "endrun")
    assert r.info.status == "FINISHED" and r.data.metrics == {"m": 1.0, "later": 2.0}


def test_a_failure_inside_the_users_with_block_fails_the_run(shell, client):
    result = shell.run_cell(
        "%%track -e failing --no-card\nwith mlflow.start_run():\n    raise ValueError('bad')",
        store_history=True,
    )
    assert isinstance(result.error_in_exec, ValueError)
    [r] = all_runs(client, "failing")
    assert r.info.status == "FAILED"


def test_nested_runs_are_children_in_the_cells_experiment(shell, client):
    run(
        shell,
        "%%track -e parent --no-card\n"
        "for i in range(2):\n"
        "    with mlflow.start_run(nested=True, run_name=f'child-{i}'):\n"
        "        mlflow.log_metric('score', i)\n"
        "plain = mlflow.start_run(run_name='plain-child', nested=True)\n"
        "mlflow.end_run()",
    )
    runs = all_runs(client, "parent")
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.info.run_name for c in children) == ["child-0", "child-1", "plain-child"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert not [r for r in all_runs(client, "Default")]


def test_the_cells_experiment_is_active_only_while_it_runs(shell, client):
    before = os.environ.get("MLFLOW_EXPERIMENT_ID")  # the store fixture sets Default's
    run(shell, "%%track -e active --no-card\nexp = mlflow.tracking.fluent._get_experiment_id()")
    [r] = all_runs(client, "active")
    assert shell.user_ns["exp"] == r.info.experiment_id != before
    assert os.environ.get("MLFLOW_EXPERIMENT_ID") == before
    # A plain run after the cell goes where it would have gone without nbtrack.
    run(shell, "with mlflow.start_run(run_name='untracked'):\n    pass")
    assert [x.info.run_name for x in all_runs(client, "Default")] == ["untracked"]


def test_an_experiment_the_user_set_is_given_back(shell, client):
    run(shell, "mlflow.set_experiment('users')")
    run(shell, "%%track -e cellexp --no-card\npass")
    run(shell, "with mlflow.start_run(run_name='after'):\n    pass")
    assert [x.info.run_name for x in all_runs(client, "users")] == ["after"]


def test_autolog_lands_in_the_tracked_run(shell, client):
    run(
        shell,
        "%%track -e auto --no-card\n"
        "import mlflow.sklearn\n"
        "from sklearn.linear_model import ElasticNet\n"
        "mlflow.sklearn.autolog(log_models=False, log_datasets=False)\n"
        "alpha = 0.5\n"
        "ElasticNet(alpha=alpha).fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])\n"
        "mlflow.sklearn.autolog(disable=True)",
    )
    runs = all_runs(client, "auto")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    [r] = runs
    assert r.info.status == "FINISHED"
    assert r.data.params["alpha"] == "0.5" and "training_score" in r.data.metrics
