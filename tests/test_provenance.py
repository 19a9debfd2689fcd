"""Lineage from data to predictions (issue 15): inference runs, the prediction audit, the graph.

The seed's scenario runs in a real kernel (papermill): two versions trained and registered from
tracked cells, predictions before and after a promotion and a rollback, each audited. The rest
runs in this process against a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from modelkit import X, log_sklearn, model, train_run
from support import code_notebook

import nbtrack
from nbtrack import record as R
from nbtrack.errors import ModelCannotLoad, NotFound, PredictionNotFound, UsageError


def inference_runs(client) -> list:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, f"tags.`{R.TAG_KIND}` = 'inference'")


@pytest.fixture
def clf(store):
    """Model ``clf`` with two versions, v1 in production."""
    r1 = train_run("digits", C=1.0)
    r2 = train_run("digits", C=0.01)
    nbtrack.register(r1, "clf")
    nbtrack.register(r2, "clf")
    nbtrack.promote("clf", 1)
    return r1, r2


# -- inference runs --------------------------------------------------------------------------------


def test_predict_returns_the_models_output_and_records_an_inference_run(clf, client):
    r1, _ = clf
    out = nbtrack.predict("clf@production", X, ids=range(len(X)))
    assert list(out) == list(model(1.0).predict(X))
    [run] = inference_runs(client)
    p, t = run.data.params, run.data.tags
    assert run.info.run_name.startswith("inference-") and run.info.status == "FINISHED"
    assert (p["model_name"], p["model_version"], p["model_uri"]) == ("clf", "1", "models:/clf/1")
    assert p["n_predictions"] == str(len(X)) and p["inference_timestamp"].endswith("Z")
    assert len(p["input_data_hash"]) == 64 and len(p["predictions_hash"]) == 64
    assert t[R.TAG_PARENT_RUN] == r1 and t[R.TAG_KIND] == "inference"
    assert t[R.TAG_INFERENCE_ALIAS] == "production" and t[R.TAG_INFERENCE_ALIASES] == "production"
    assert run.info.experiment_id == client.get_run(r1).info.experiment_id
    [ds] = run.inputs.dataset_inputs
    assert ds.tags[0].value == "inference" and p["input_data_hash"].startswith(ds.dataset.digest)
    files = [f.path for f in client.list_artifacts(run.info.run_id, R.ARTIFACT_PREDICTIONS_DIR)]
    assert files == [f"{R.ARTIFACT_PREDICTIONS_DIR}/part-00000.parquet"]
    import pyarrow.parquet as pq

    local = client.download_artifacts(run.info.run_id, files[0])
    table = pq.read_table(local).to_pydict()
    assert table["prediction_id"] == [str(i) for i in range(len(X))]
    assert table["output"] == [int(v) for v in out] and len(set(table["row_hash"])) == len(X)
    local = client.download_artifacts(run.info.run_id, R.ARTIFACT_INPUT_PROFILE)
    profile = json.loads(Path(local).read_text())
    assert profile["rows"] == len(X)
    assert profile["columns"]["0"]["mean"] == pytest.approx(float(X[:, 0].mean()))


def test_the_same_input_has_the_same_digest_and_ids_are_made_unique_and_sortable(clf, client):
    nbtrack.predict("clf/2", X)
    nbtrack.predict("clf/2", X)
    a, b = sorted(inference_runs(client), key=lambda r: r.info.start_time)
    assert a.data.params["input_data_hash"] == b.data.params["input_data_hash"]
    assert a.data.params["predictions_hash"] == b.data.params["predictions_hash"]
    assert R.TAG_INFERENCE_ALIAS not in a.data.tags  # the caller named a version, not an alias
    import pyarrow.parquet as pq

    ids = []
    for run in (a, b):
        path = client.download_artifacts(
            run.info.run_id, f"{R.ARTIFACT_PREDICTIONS_DIR}/part-00000.parquet"
        )
        ids.append(pq.read_table(path).column("prediction_id").to_pylist())
    assert len(set(ids[0] + ids[1])) == 2 * len(X)
    assert ids[0] == sorted(ids[0]) and ids[1] == sorted(ids[1]) and ids[0][-1] < ids[1][0]


def test_a_dataframe_a_model_object_and_other_references_resolve(clf, client):
    _, r2 = clf
    loaded = nbtrack.load("clf")  # production: v1
    nbtrack.predict(loaded, X[:5])
    nbtrack.predict("clf", pd.DataFrame(X[:3]))  # a bare name: its production version
    nbtrack.predict(r2, X[:2])  # a run id: the version registered from it
    nbtrack.predict("models:/clf@production", X[:2])
    versions = sorted(
        (r.info.start_time, r.data.params["model_version"]) for r in inference_runs(client)
    )
    assert [v for _, v in versions] == ["1", "1", "2", "1"]


def test_bad_input_says_what_exists_and_records_no_run(clf, client):
    with pytest.raises(NotFound, match=r"'clf'"):
        nbtrack.predict("nosuch@production", X)
    with pytest.raises(NotFound, match=r"production \(v1\)"):
        nbtrack.predict("clf@staging", X)
    with pytest.raises(NotFound, match="has versions 1, 2"):
        nbtrack.predict("clf/7", X)
    with pytest.raises(UsageError, match="3 ids for 60 rows"):
        nbtrack.predict("clf@production", X, ids=[1, 2, 3])
    with pytest.raises(UsageError, match="'7' appears more than once"):
        nbtrack.predict("clf@production", X[:3], ids=[7, 8, 7])
    with pytest.raises(UsageError, match=r"nbtrack\.load"):
        nbtrack.predict(model(1.0), X)  # a model nbtrack did not load: which version is it?
    assert inference_runs(client) == []


def test_a_model_whose_flavour_cannot_load_here_names_the_package(store, client, tmp_path):
    import mlflow

    (tmp_path / "blob").write_text("x")
    mlflow.set_experiment("odd")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model", loader_module="nbtrack_absent_flavour", data_path=str(tmp_path / "blob")
        )
    nbtrack.register(run.info.run_id, "odd")
    with pytest.raises(ModelCannotLoad, match="'nbtrack_absent_flavour'"):
        nbtrack.predict("odd/1", X)
    assert inference_runs(client) == []


def test_a_serving_loop_appends_batches_to_one_run_and_keeps_them_on_an_error(clf, client):
    with nbtrack.inference("clf@production") as inf:
        for i in range(3):
            inf.predict(X[i * 10 : (i + 1) * 10], ids=[f"s{i}-{j}" for j in range(10)])
    with pytest.raises(ZeroDivisionError), nbtrack.inference("clf/2") as failing:
        failing.predict(X[:4], ids=["f0", "f1", "f2", "f3"])
        1 / 0  # noqa: B018
    runs = {r.info.run_id: r for r in inference_runs(client)}
    ok, bad = runs[inf.run_id], runs[failing.run_id]
    assert ok.data.params["n_predictions"] == "30" and ok.info.status == "FINISHED"
    parts = client.list_artifacts(inf.run_id, R.ARTIFACT_PREDICTIONS_DIR)
    assert len(parts) == 3
    assert bad.info.status == "FAILED" and bad.data.params["n_predictions"] == "4"
    assert nbtrack.audit_prediction("s2-7").inference_run == inf.run_id
    assert nbtrack.audit_prediction("f3").model_version == "2"


# -- the audit -------------------------------------------------------------------------------------


def test_audit_answers_version_alias_then_training_run_and_output(clf, client, monkeypatch):
    r1, r2 = clf
    nbtrack.predict("clf@production", X[:10], ids=[f"a{i}" for i in range(10)])
    nbtrack.promote("clf", 2)
    out = nbtrack.predict("clf@production", X[:10], ids=[f"b{i}" for i in range(10)])
    nbtrack.rollback("clf")
    nbtrack.predict("clf/2", X[:10], ids=[f"c{i}" for i in range(10)])
    a, b, c = (nbtrack.audit_prediction(k) for k in ("a3", "b3", "c3"))
    assert (a.model_version, a.aliases_then, a.training_run) == ("1", ("production",), r1)
    assert (b.model_version, b.aliases_then, b.training_run) == ("2", ("production",), r2)
    assert c.aliases_then == ("previous_production",) and c.alias_named is None
    assert b.output == int(out[3]) and b.aliases_source == "audit trail"
    assert len(b.input_row_hash) == 16 and b.input_row_hash == a.input_row_hash  # same row
    assert b.notebook and "b3" in str(b) and "clf v2" in b._repr_html_()
    with pytest.raises(PredictionNotFound, match="in the 3 inference runs"):
        nbtrack.audit_prediction("zzz")


def test_ids_are_strings_and_a_reused_id_names_every_run(clf):
    nbtrack.predict("clf@production", X[:3], ids=[12345, 2, 3])
    nbtrack.predict("clf/2", X[:3], ids=["12345", "x", "y"])
    found = nbtrack.audit_prediction(12345)
    assert found.model_version == "2" and len(found.also_in) == 1  # the newest first


def test_the_audit_reads_in_runs_its_index_never_saw(clf, monkeypatch, tmp_path):
    nbtrack.predict("clf@production", X[:20], ids=[f"k{i}" for i in range(20)])
    with nbtrack.inference("clf/2") as inf:
        inf.predict(X[:5], ids=[f"m{i}" for i in range(5)])
    # Another machine: an empty state dir, so an empty index and an empty download cache.
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "elsewhere"))
    assert nbtrack.audit_prediction("k19").model_version == "1"
    # The closed runs' id ranges (tags) say which run may hold an id: only that one was read.
    from nbtrack import store
    from nbtrack.store import prediction_index

    indexed = prediction_index.indexed_parts(store.tracking_uri())
    assert inf.run_id not in indexed and len(indexed) == 1
    assert nbtrack.audit_prediction("m4").inference_run == inf.run_id


def test_a_deleted_inference_run_is_not_an_answer(clf, client):
    nbtrack.predict("clf@production", X[:3], ids=["d1", "d2", "d3"])
    [run] = inference_runs(client)
    client.delete_run(run.info.run_id)
    with pytest.raises(PredictionNotFound, match="in the 0 inference runs"):
        nbtrack.audit_prediction("d1")


def test_hostile_ids_and_outputs_are_escaped_in_html(clf):
    nbtrack.predict("clf@production", X[:1], ids=["<script>alert(1)</script>"])
    html = nbtrack.audit_prediction("<script>alert(1)</script>")._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


# -- the graph and drift ---------------------------------------------------------------------------


def test_lineage_from_each_kind_of_node(clf, client):
    r1, r2 = clf
    nbtrack.predict("clf@production", X[:3], ids=["g1", "g2", "g3"])
    nbtrack.predict("clf/2", X[:3])
    whole = nbtrack.lineage("clf")
    assert sorted(whole.training_runs) == sorted([r1, r2])
    assert sorted(whole.versions) == ["clf/1", "clf/2"] and len(whole.inference_runs) == 2
    data = json.loads(json.dumps(whole.to_dict()))
    kinds = {(e["source"].split(":")[0], e["target"].split(":")[0]) for e in data["edges"]}
    assert kinds == {("run", "version"), ("version", "inference")}
    v1 = nbtrack.lineage("clf", version=1)
    assert v1.versions == ["clf/1"] and len(v1.inference_runs) == 1
    history = v1.nodes["version:clf/1"]["detail"]["alias history"]
    assert history.startswith("production ") and history.endswith("now")
    assert nbtrack.lineage(r2).versions == ["clf/2"]
    pred = nbtrack.lineage("g2")
    assert pred.focus == "prediction:g2" and pred.training_runs == [r1]
    inf = nbtrack.lineage(pred.inference_runs[0])
    assert inf.versions == ["clf/1"] and inf.training_runs == [r1]


def test_lineage_from_a_bad_data_digest_finds_models_and_predictions(store, client, tmp_path):
    import mlflow

    digests = {}
    for name in ("good", "bad"):
        data = tmp_path / f"{name}.csv"
        rows = X if name == "good" else X[::-1]  # other rows: another digest
        pd.DataFrame(rows).assign(y=(rows[:, 0] > 0.5).astype(int)).to_csv(data, index=False)
        with nbtrack.run(experiment="data", data=[str(data)]) as run:
            log_sklearn(model(1.0 if name == "good" else 0.5))
        digests[name] = mlflow.get_run(run.run_id).data.params["data_hash"]
        nbtrack.register(run.run_id, f"m-{name}")
        nbtrack.predict(f"m-{name}/1", X[:4], ids=[f"{name}{i}" for i in range(4)])
    g = nbtrack.lineage(data_hash=digests["bad"])
    assert g.versions == ["m-bad/1"] and len(g.inference_runs) == 1
    assert g.focus and g.focus.startswith("dataset:")


def test_diff_of_two_inference_runs_shows_how_the_input_moved(clf, client):
    nbtrack.predict("clf@production", X)
    nbtrack.predict("clf@production", X * np.array([1.0, 3.0, 1.0]))
    a, b = sorted(inference_runs(client), key=lambda r: r.info.start_time)
    d = nbtrack.diff(a.info.run_id, b.info.run_id)
    changed = d["data profile"].keys()
    assert "1 mean" in changed and "0 mean" not in changed and "1 max" in changed


def test_a_training_run_logs_its_data_profile_for_a_drift_diff(clf, client):
    with nbtrack.run(experiment="digits") as run:
        nbtrack.log_data_profile(pd.DataFrame(X))
    nbtrack.predict("clf@production", X + 1.0)
    [inf] = inference_runs(client)
    d = nbtrack.diff(run.run_id, inf.info.run_id)
    assert {"0 mean", "1 mean", "2 mean"} <= set(d["data profile"].keys())
    with pytest.raises(UsageError, match="needs a tracked run"):
        nbtrack.log_data_profile(X)


def test_cli_audit_prediction_and_lineage(clf, capsys):
    from nbtrack.frontends import cli

    nbtrack.predict("clf@production", X[:2], ids=["q1", "q2"])
    assert cli.main(["audit-prediction", "q2", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["model_version"] == "1" and found["aliases_then"] == ["production"]
    assert cli.main(["lineage", "clf", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["nodes"]) == 5
    assert cli.main(["audit-prediction", "nope"]) == 2
    assert "no prediction 'nope' in the 1 inference run " in capsys.readouterr().err


# -- the seed's scenario, in a real kernel ---------------------------------------------------------

TRAIN = """\
%%track -e scenario --data {data} --register clf --no-live
import pandas as pd
from sklearn.linear_model import LogisticRegression
import mlflow
frame = pd.read_csv("{data}")
clf = LogisticRegression(C={c}).fit(frame[["a", "b"]], frame["y"])
mlflow.sklearn.log_model(clf, name="model", pip_requirements=["scikit-learn"])
"""


def test_the_seed_scenario_in_a_kernel(store, tmp_path):
    rng = np.random.RandomState(0)
    for i, shift in ((1, 0.0), (2, 0.3)):
        frame = pd.DataFrame(rng.rand(80, 2), columns=["a", "b"])
        frame["y"] = (frame.a + frame.b > 1 + shift).astype(int)
        frame.to_csv(tmp_path / f"train_v{i}.csv", index=False)
    new = "import pandas as pd\nnew = pd.DataFrame({'a': [0.1, 0.9, 0.5], 'b': [0.2, 0.8, 0.7]})"
    nb = code_notebook(
        tmp_path / "scenario.ipynb",
        [
            "%load_ext nbtrack",
            TRAIN.format(data="train_v1.csv", c=1.0),
            TRAIN.format(data="train_v2.csv", c=0.5),
            new,
            "nbtrack.promote('clf', 1, reason='first')",
            "p1 = nbtrack.predict('clf@production', new, ids=[101, 102, 103])",
            "nbtrack.promote('clf', 2, reason='better')",
            "p2 = nbtrack.predict('clf@production', new, ids=[201, 202, 203])",
            "nbtrack.rollback('clf', reason='drift')",
            "p3 = nbtrack.predict('clf@production', new, ids=[301, 302, 303])",
            "import json\n"
            "audits = {k: nbtrack.audit_prediction(k).to_dict() for k in (102, 202, 302)}\n"
            "json.dump(audits, open('audits.json', 'w'), default=str)",
        ],
    )
    import papermill

    papermill.execute_notebook(
        str(nb), str(tmp_path / "out.ipynb"), progress_bar=False, cwd=str(tmp_path)
    )
    audits = json.loads((tmp_path / "audits.json").read_text())
    from mlflow import MlflowClient

    c = MlflowClient(store)
    [run1, run2] = sorted(
        c.search_runs([c.get_experiment_by_name("scenario").experiment_id], "params.C != ''")
        or c.search_runs([c.get_experiment_by_name("scenario").experiment_id]),
        key=lambda r: r.info.start_time,
    )[:2]
    expect = {"102": ("1", run1), "202": ("2", run2), "302": ("1", run1)}
    for key, (version, run) in expect.items():
        got = audits[key]
        assert got["model_version"] == version, key
        assert got["aliases_then"] == ["production"], key
        assert got["training_run"] == run.info.run_id, key
        assert got["data_hash"] == run.data.params["data_hash"], key
        assert got["notebook"] and got["notebook"].endswith("scenario.ipynb"), key
        assert got["snapshot"] == f"runs:/{run.info.run_id}/{R.ARTIFACT_NOTEBOOK}", key
    # Another process, another machine's empty index: the same answer from the CLI.
    env = {**os.environ, "NBTRACK_STATE_DIR": str(tmp_path / "cold")}
    done = subprocess.run(
        [sys.executable, "-m", "nbtrack.frontends.cli", "audit-prediction", "202", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cold = json.loads(done.stdout)
    assert (cold["model_version"], cold["aliases_then"]) == ("2", ["production"])
    assert cold["training_run"] == run2.info.run_id
