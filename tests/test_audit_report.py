"""``nbtrack audit-report``: the compliance report of a model version, from a real SQLite store
with real inference runs (``nbtrack.predict``), a reproduction, registry moves with reasons and a
hostile param; the page is standalone (no script, nothing fetched) and every value escaped."""

from __future__ import annotations

import json
import re

import pytest
from modelkit import X, train_run

import nbtrack
from nbtrack import record as R
from nbtrack.frontends import cli
from nbtrack.provenance import report

MODEL = "audit-model"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
DIGEST = "d" * 64


def _record_training_files(client, run_id: str) -> None:
    """What a tracked cell records that ``train_run`` does not: data, environment, notebook."""
    from mlflow.entities import Dataset, DatasetInput

    ds = Dataset(name="digits.npz", digest=DIGEST[:36], source_type="local", source="data/x.npz")
    client.log_inputs(run_id, datasets=[DatasetInput(ds)])
    data = [
        {
            "given": "data/digits.npz",
            "path": "/data/digits.npz",
            "kind": "file",
            "digest": DIGEST,
            "size": 1234,
            "files": 1,
            "dvc_md5": None,
        }
    ]
    client.log_text(run_id, json.dumps(data), R.ARTIFACT_DATA)
    env = {
        "python_version": "3.11.9",
        "platform": "Linux-x86_64",
        "cpu_count": 8,
        "libraries": {"sklearn": "1.5.0"},
        "gpus": [],
    }
    client.log_text(run_id, json.dumps(env), R.ARTIFACT_ENVIRONMENT)
    client.log_text(run_id, "numpy==2.0\nscikit-learn==1.5.0\n", R.ARTIFACT_REQUIREMENTS)
    client.log_text(run_id, "{}", R.ARTIFACT_NOTEBOOK)
    client.set_tag(run_id, R.TAG_GIT_COMMIT, "abc123def")
    client.set_tag(run_id, R.TAG_SOURCE_NAME, "train.ipynb")


@pytest.fixture
def deployed(store, client):
    """v1 trained on recorded data, reproduced once, promoted (hostile reason), predicted with;
    v2 promoted over it, predicted with."""
    v1 = train_run("audit-train", C=1.0, params={"note": SCRIPT})
    _record_training_files(client, v1)
    nbtrack.register(v1, MODEL)
    nbtrack.register(train_run("audit-train", C=2.0), MODEL)
    repro = client.create_run(client.get_run(v1).info.experiment_id, run_name="repro")
    client.set_tag(repro.info.run_id, R.TAG_REPRODUCES, v1)
    client.set_tag(repro.info.run_id, R.TAG_REPRO_VERDICT, "REPRODUCED")
    client.set_terminated(repro.info.run_id, "FINISHED")
    nbtrack.promote(MODEL, 1, reason=IMG)
    nbtrack.predict(f"{MODEL}@production", X[:7])
    nbtrack.predict(f"{MODEL}/1", X[:5], experiment="audit-serving")  # another experiment
    nbtrack.promote(MODEL, 2, reason="better")
    nbtrack.predict(f"{MODEL}@production", X[:3])
    return v1


def test_the_report_says_what_an_auditor_asks(deployed):
    f = report.facts(MODEL, 1)
    assert f["version"].version == "1" and f["training"]["run"].run_id == deployed
    assert f["training"]["datasets"] == {"digits.npz": DIGEST[:36]}
    assert [r.tags[R.TAG_REPRO_VERDICT] for r in f["reproductions"]] == ["REPRODUCED"]
    assert (len(f["inference"]["runs"]), f["inference"]["predictions"]) == (2, 12)
    assert set(f["inference"]["experiments"].values()) == {"audit-train", "audit-serving"}
    assert [m["action"] for m in f["moves"]].count("promote") == 2

    page = report.render(f)
    text = re.sub(r"<[^>]+>", " ", page)
    for said in (
        DIGEST,
        "data/digits.npz",
        "abc123def",
        "train.ipynb",
        "notebook.ipynb",
        "3.11.9",
        "2 installed distributions",
        "REPRODUCED",
        "better",
        "12",
    ):
        assert said in text, said
    # Every value escaped: the hostile param and reason are text.
    assert SCRIPT not in page and IMG not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # Standalone: no script, nothing loaded from elsewhere.
    tags = re.findall(r"<[a-zA-Z][^>]*>", page)
    assert not [t for t in tags if re.match(r"<(script|link|img|iframe)\b", t) or " src=" in t]
    assert "nbtrack-lineage-svg" in page  # the graph is drawn inline


def test_production_by_default_and_the_cli_writes_the_file(deployed, tmp_path, capsys, monkeypatch):
    assert "Audit report: audit-model version 2" in nbtrack.audit_report(MODEL)
    out = tmp_path / "r.html"
    assert cli.main(["audit-report", MODEL, "--version", "1", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said == f"wrote the audit report of {MODEL} to {out}\n"
    assert "Audit report: audit-model version 1" in out.read_text()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["audit-report", MODEL]) == 0
    assert (tmp_path / "audit-model-v2-audit.html").exists()


def test_bad_input_is_one_sentence(deployed, tmp_path, capsys):
    assert cli.main(["audit-report", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-model" in err and "registry list" in err
    assert cli.main(["audit-report", MODEL, "--version", "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its versions are: 1, 2" in err
    bad = tmp_path / "missing-dir" / "r.html"
    assert cli.main(["audit-report", MODEL, "--out", str(bad)]) == 2
    assert "cannot write the audit report" in capsys.readouterr().err


def test_a_model_with_nothing_in_production(store):
    nbtrack.register(train_run("audit-train", C=1.0), "idle-model")
    with pytest.raises(
        nbtrack.NbtrackError if hasattr(nbtrack, "NbtrackError") else Exception, match="promote one"
    ):
        report.facts("idle-model")
    page = report.audit_report("idle-model", 1)
    assert "none recorded" in page  # no inference runs, no reproductions


def test_lineage_without_a_frontend_shows_the_static_picture(deployed):
    bundle = nbtrack.lineage(MODEL, version=1)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "nbtrack-lineage-svg" in bundle["text/html"]
    assert bundle["text/plain"].startswith("lineage: ")


def test_the_default_file_name_stays_in_the_folder():
    assert report.default_path("digits-clf", "3") == "digits-clf-v3-audit.html"
    assert report.default_path("../etc/x y", "3") == "_etc_x_y-v3-audit.html"
