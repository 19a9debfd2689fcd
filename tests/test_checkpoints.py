"""nbtrack.checkpoint / checkpoints / load_checkpoint on a real SQLite store: LoggedModels of the
run with their step and linked metrics, keep=N by a metric, torch written in the background."""

from __future__ import annotations

import mlflow
import pytest

import nbtrack
from nbtrack import record
from nbtrack.errors import NotFound, UsageError
from tests import modelkit


def test_torch_state_dicts_keep_the_best_3_by_val_acc(store, client):
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    accs = [0.5, 0.8, 0.6, 0.9, 0.7, 0.85]  # the best 3: steps 3, 5, 1
    mlflow.set_experiment("ckpt")
    with mlflow.start_run() as run:
        for step, acc in enumerate(accs):
            with torch.no_grad():
                net.weight.fill_(float(step))
            saved = nbtrack.checkpoint(
                net.state_dict(), step=step, metrics={"val_acc": acc}, keep=3, by="val_acc"
            )
            # the copy was taken at the call: changing the weights now changes nothing saved
            with torch.no_grad():
                net.weight.fill_(-1.0)
        assert saved.wait()
    table = nbtrack.checkpoints(run.info.run_id)
    assert list(table["step"]) == list(range(6))
    assert list(table.loc[table["kept"], "step"]) == [1, 3, 5]
    dropped = table[~table["kept"]]
    assert set(dropped["why"]) == {"dropped: not in the best 3 by val_acc"}
    assert (dropped["bytes"] == 0).all() and (table.loc[table["kept"], "bytes"] > 0).all()
    assert list(table["val_acc"]) == accs  # MLflow's metrics linked to each model
    assert set(table["format"]) == {"state_dict"}

    best = nbtrack.load_checkpoint(run.info.run_id, "best")
    assert torch.equal(best["weight"], torch.full((2, 3), 3.0))
    last = nbtrack.load_checkpoint(run.info.run_id, "last")
    assert torch.equal(last["weight"], torch.full((2, 3), 5.0))
    assert torch.equal(nbtrack.load_checkpoint(run.info.run_id, 1)["weight"], torch.ones(2, 3))
    with pytest.raises(NotFound, match="kept steps: 1, 3, 5"):
        nbtrack.load_checkpoint(run.info.run_id, 0)

    # the models are MLflow's: linked to the run, with their step
    models = client.search_logged_models([run.info.experiment_id])
    assert {m.source_run_id for m in models} == {run.info.run_id}
    assert sorted(int(m.tags[record.TAG_CHECKPOINT_STEP]) for m in models) == list(range(6))
    # usage counts the kept checkpoints' bytes as checkpoints
    assert nbtrack.usage("ckpt").by_kind["checkpoints"] == table["bytes"].sum()


def test_torch_module_and_sklearn_load_with_their_flavour(store):
    torch = pytest.importorskip("torch")
    mlflow.set_experiment("ckpt")
    with mlflow.start_run() as run:
        net = torch.nn.Sequential(torch.nn.Linear(3, 1))
        nbtrack.checkpoint(net, step=0).wait()
    loaded = nbtrack.load_checkpoint(run.info.run_id, "last")
    x = torch.ones(1, 3)
    assert torch.equal(loaded(x), net(x))

    with mlflow.start_run() as run2:
        for step, C in enumerate([0.1, 1.0]):
            nbtrack.checkpoint(
                modelkit.model(C), step=step, metrics={"loss": 1 / C}, keep=1, by="loss", mode="min"
            )
    table = nbtrack.checkpoints(run2.info.run_id)
    assert list(table["kept"]) == [False, True]
    est = nbtrack.load_checkpoint(run2.info.run_id, "best")
    assert est.C == 1.0 and modelkit.predictions(est)


def test_bad_checkpoint_calls_say_what_to_do(store):
    with pytest.raises(UsageError, match="needs a run"):
        nbtrack.checkpoint(modelkit.model(1.0), step=0)
    mlflow.set_experiment("ckpt")
    with mlflow.start_run():
        with pytest.raises(UsageError, match="cannot save a str"):
            nbtrack.checkpoint("weights", step=0)
        with pytest.raises(UsageError, match="by='acc' is not among"):
            nbtrack.checkpoint(modelkit.model(1.0), step=0, metrics={"loss": 1.0}, by="acc")
        with pytest.raises(UsageError, match="keep"):
            nbtrack.checkpoint(modelkit.model(1.0), step=0, keep=0)


def test_keep_3_in_a_tracked_cell_leaves_3_loadable_checkpoints(shell):
    torch = pytest.importorskip("torch")
    shell.run_cell("import torch, nbtrack", store_history=True)
    result = shell.run_cell(
        "%%track -e ckpt-cell --no-card\n"
        "torch.manual_seed(0)\n"
        "net = torch.nn.Linear(4, 2)\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))\n"
        "for epoch in range(6):\n"
        "    loss = torch.nn.functional.cross_entropy(net(x), y)\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n"
        "    va = float((net(x).argmax(1) == y).float().mean()) + epoch / 1000\n"
        "    nbtrack.log(step=epoch, val_acc=va)\n"
        "    nbtrack.checkpoint(net, step=epoch, metrics={'val_acc': va}, keep=3, by='val_acc')\n",
        store_history=True,
    )
    assert result.success, result.error_in_exec
    run_id = nbtrack.last_run().run_id
    table = nbtrack.checkpoints(run_id)
    assert len(table) == 6 and table["kept"].sum() == 3
    best3 = table.sort_values(["val_acc", "step"], ascending=False)["step"].head(3)
    assert sorted(table.loc[table["kept"], "step"]) == sorted(best3)
    for step in table.loc[table["kept"], "step"]:
        loaded = nbtrack.load_checkpoint(run_id, int(step))
        assert loaded(torch.ones(1, 4)).shape == (1, 2)


KILLED_MID_SAVE = """
import os, sys, mlflow, torch, nbtrack
mlflow.set_experiment("ckpt-killed")
run = mlflow.start_run()
net = torch.nn.Linear(64, 64)
nbtrack.checkpoint(net.state_dict(), step=0, metrics={"val_acc": 0.5}).wait()
saved = nbtrack.checkpoint(net.state_dict(), step=1, metrics={"val_acc": 0.9})
print(run.info.run_id, saved.model_id, flush=True)
os._exit(0)  # the process ends with the second checkpoint's write under way, as a killed kernel
"""


def test_a_process_killed_mid_save_lists_no_checkpoint_that_cannot_load(store, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("torch")
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_SAVE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=True
    ).stdout
    run_id, model_id = out.split()
    table = nbtrack.checkpoints(run_id)
    assert 0 in set(table["step"])
    if model_id in set(table["model_id"]):  # the thread may have finished before the exit
        assert nbtrack.load_checkpoint(run_id, 1)
    else:
        from nbtrack import store as st

        assert st.logged_model(model_id).status == "PENDING"
    for step in table["step"]:
        assert nbtrack.load_checkpoint(run_id, int(step))
