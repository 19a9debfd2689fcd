"""The model registry core (model_registry) against a real MLflow store: registration and its
tags, promotion with aliases and the legacy stage mirror, rollback, archive, the audit trail,
what is in production, loading, bad input, and two processes promoting at once."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import warnings

import mlflow
import pytest
from modelkit import log_sklearn, model, predictions, train_run

import nbtrack
from nbtrack.errors import (
    MoveRefused,
    NoModelLogged,
    NoPreviousProduction,
    NotFound,
    PermissionDenied,
    RunNotFinished,
    UsageError,
)
from nbtrack.model_registry import registry as models


@pytest.fixture
def three(store):
    """Model "digits" with versions 1, 2, 3 (C = 0.01, 1, 100), version 1 in production."""
    ids = [train_run(C=c) for c in (0.01, 1.0, 100.0)]
    for run_id in ids:
        nbtrack.register(run_id, "digits")
    nbtrack.promote("digits", 1)
    return ids


def _stages(client, name: str) -> dict[str, str]:
    return {
        str(mv.version): mv.current_stage for mv in client.search_model_versions(f"name='{name}'")
    }


def _alias(client, name: str, alias: str) -> str:
    return str(client.get_model_version_by_alias(name, alias).version)  # MLflow: int or str


def _aliases(client, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def _tags(client, name: str, version: str) -> dict[str, str]:
    return client.get_model_version(name, version).tags


# -- registering ---------------------------------------------------------------------------------


def test_register_carries_the_run_record(store, client, tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    with nbtrack.run(experiment="reg", seed=1, data=[str(data)]) as r:
        log_sklearn(model(1.0))
        mlflow.log_metric("val_acc", 0.75)
        mlflow.log_metric("val_acc", 0.875)  # the final value is the one that counts
        mlflow.set_tag("mlflow.note.content", "baseline, digits v2 data")
    run = client.get_run(r.run_id)

    v = nbtrack.register(r.run_id, "digits")

    assert v.version == "1" and isinstance(v.version, str)
    mv = client.get_model_version("digits", "1")
    assert mv.tags["run_id"] == r.run_id
    assert float(mv.tags["val_acc"]) == 0.875
    assert mv.tags["data_hash"] == run.data.params["data_hash"]
    assert mv.tags["notebook"] == run.data.tags["mlflow.source.name"]
    if "git_commit" in run.data.params:
        assert mv.tags["git_commit"] == run.data.params["git_commit"]
    assert mv.tags["nbtrack.experiment"] == "reg"
    assert mv.description == "baseline, digits v2 data"
    assert mv.run_id == r.run_id
    # registered from the LoggedModel (MLflow 3), not from runs:/<id>/model
    [logged] = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{r.run_id}'"
    )
    assert mv.source == logged.model_uri
    # the registration is the first record of the audit trail
    [record] = nbtrack.audit("digits").to_dict("records")
    assert (record["action"], record["to_version"]) == ("register", "1")


def test_description_from_the_run_when_it_has_none(store, client):
    run_id = train_run("desc", C=2.0)
    nbtrack.register(run_id, "described")
    text = client.get_model_version("described", "1").description
    assert run_id in text and "experiment desc" in text and "val_acc=" in text


def test_register_a_run_that_logged_no_model_says_so(store, client):
    run_id = train_run(log_model=False)
    with pytest.raises(NoModelLogged) as err:
        nbtrack.register(run_id, "digits")
    assert str(err.value) == (
        f"run {run_id} logged no model, so nothing was registered as 'digits'; log one in the "
        "cell, e.g. mlflow.sklearn.log_model(model, name='model')"
    )
    assert client.search_registered_models() == []


def test_register_picks_the_named_model_else_the_last(store, client):
    mlflow.set_experiment("two-models")
    with mlflow.start_run() as run:
        first = log_sklearn(model(0.01), "small")
        second = log_sklearn(model(100.0), "big")
    run_id = run.info.run_id
    assert client.get_model_version("m", nbtrack.register(run_id, "m").version).source == (
        second.model_uri
    )
    v = nbtrack.register(run_id, "m", model_path="small")
    assert client.get_model_version("m", v.version).source == first.model_uri
    with pytest.raises(NoModelLogged, match="logged no model named 'medium'"):
        nbtrack.register(run_id, "m", model_path="medium")


def test_register_an_unknown_run(store):
    with pytest.raises(NotFound, match="no run 'nope'"):
        nbtrack.register("nope", "digits")


# -- promoting, rolling back, archiving ----------------------------------------------------------


def test_promote_moves_the_alias_and_archives_the_previous_version(three, client):
    move = nbtrack.promote("digits", 2, reason="better val_acc")
    assert str(move) == "version 2 of digits is now in production (was version 1)"

    assert _alias(client, "digits", "production") == "2"
    assert _alias(client, "digits", "previous_production") == "1"
    # the legacy stage field agrees, for readers of the old API
    assert _stages(client, "digits") == {"1": "Archived", "2": "Production", "3": "None"}
    assert _tags(client, "digits", "2")["nbtrack.stage"] == "production"
    assert _tags(client, "digits", "1")["nbtrack.stage"] == "archived"
    assert _tags(client, "digits", "2")["nbtrack.promotion_reason"] == "better val_acc"
    assert _tags(client, "digits", "1")["nbtrack.archived_by"] == move.who
    # and the loader's view
    loaded = mlflow.sklearn.load_model("models:/digits@production")
    assert predictions(loaded) == predictions(model(1.0))


def test_staging_then_production(three, client):
    nbtrack.promote("digits", 3, stage="staging")
    assert _stages(client, "digits")["3"] == "Staging"
    assert _aliases(client, "digits") == {"production": "1", "staging": "3"}
    nbtrack.promote("digits", 3, stage="Production")  # stage names as MLflow writes them too
    # a version has one stage: it left staging
    assert _aliases(client, "digits") == {
        "production": "3",
        "previous_production": "1",
    }
    assert _stages(client, "digits") == {"1": "Archived", "2": "None", "3": "Production"}


def test_rollback_puts_the_previous_version_back_in_one_call(three, client):
    nbtrack.promote("digits", 3)
    move = nbtrack.rollback("digits", reason="v3 misbehaves")
    assert (move.action, move.version, move.previous) == ("rollback", "1", "3")
    assert _alias(client, "digits", "production") == "1"
    assert predictions(nbtrack.load("digits")) == predictions(model(0.01))
    assert _stages(client, "digits") == {"1": "Production", "2": "None", "3": "Archived"}
    # rolling back again undoes the rollback
    nbtrack.rollback("digits")
    assert _alias(client, "digits", "production") == "3"


def test_rollback_with_no_previous_production(three):
    with pytest.raises(NoPreviousProduction) as err:
        nbtrack.rollback("digits")
    assert str(err.value) == (
        "model 'digits' has no previous production version to roll back to; promote a version "
        "with nbtrack.promote(name, version)"
    )


def test_promoting_a_failed_run_is_refused_unless_forced(store, client):
    ok, failed = train_run(C=1.0), train_run(C=2.0, status="FAILED")
    nbtrack.register(ok, "m")
    nbtrack.register(failed, "m")  # registering is allowed; promoting is the decision
    nbtrack.promote("m", 1)
    with pytest.raises(RunNotFinished) as err:
        nbtrack.promote("m", 2)
    assert str(err.value) == (
        f"version 2 of model 'm' comes from run {failed}, which FAILED; pass force=True to "
        "promote it anyway"
    )
    assert _alias(client, "m", "production") == "1"
    assert [r["action"] for r in models.audit_records("m")] == ["register", "register", "promote"]
    nbtrack.promote("m", 2, force=True)
    assert _alias(client, "m", "production") == "2"


def test_unknown_model_version_and_stage(three):
    with pytest.raises(NotFound) as err:
        nbtrack.promote("digitz", 1)
    assert str(err.value) == (
        "no registered model 'digitz' in the tracking store; see `nbtrack registry list` for "
        "the names"
    )
    with pytest.raises(NotFound) as err:
        nbtrack.promote("digits", 7)
    assert str(err.value) == (
        "no version 7 of model 'digits' in the tracking store; its versions are: 1, 2, 3"
    )
    with pytest.raises(UsageError, match="unknown stage 'prod'"):
        nbtrack.promote("digits", 2, stage="prod")
    with pytest.raises(UsageError, match="'two' is not a model version"):
        nbtrack.promote("digits", "two")
    with pytest.raises(NotFound, match="no registered model 'digitz'"):
        nbtrack.rollback("digitz")
    with pytest.raises(NotFound, match="no registered model 'digitz'"):
        nbtrack.production("digitz")


def test_promoting_the_production_version_again_changes_nothing(three):
    before = len(models.audit_records("digits"))
    move = nbtrack.promote("digits", "v1")
    assert not move.changed and str(move) == "version 1 of digits is already in production"
    assert len(models.audit_records("digits")) == before


def test_archive(three, client):
    nbtrack.promote("digits", 2, stage="staging")
    move = nbtrack.archive("digits", 2, reason="superseded")
    assert str(move) == "version 2 of digits is archived"
    assert "staging" not in _aliases(client, "digits")
    assert _stages(client, "digits")["2"] == "Archived"
    assert _tags(client, "digits", "2")["nbtrack.stage"] == "archived"
    with pytest.raises(MoveRefused) as err:
        nbtrack.archive("digits", 1)
    assert str(err.value) == (
        "version 1 of model 'digits' is in production and cannot be archived; promote another "
        "version, or roll back, first"
    )


def test_the_legacy_stage_mirror_can_be_turned_off(store, client, monkeypatch):
    monkeypatch.setenv("NBTRACK_LEGACY_STAGES", "0")
    for c in (1.0, 2.0):
        nbtrack.register(train_run(C=c), "m")
    nbtrack.promote("m", 1)
    nbtrack.promote("m", 2)
    assert _stages(client, "m") == {"1": "None", "2": "None"}
    assert _aliases(client, "m") == {"production": "2", "previous_production": "1"}
    assert _tags(client, "m", "1")["nbtrack.stage"] == "archived"


def test_alias_names_are_configurable(store, client, monkeypatch):
    monkeypatch.setenv("NBTRACK_PRODUCTION_ALIAS", "prod")
    monkeypatch.setenv("NBTRACK_STAGING_ALIAS", "candidate")
    for c in (1.0, 2.0):
        nbtrack.register(train_run(C=c), "m")
    nbtrack.promote("m", 1)
    nbtrack.promote("m", 2, stage="candidate")
    nbtrack.promote("m", 2)
    assert _aliases(client, "m") == {"prod": "2", "previous_prod": "1"}
    assert nbtrack.production("m").uri == "models:/m@prod"
    assert nbtrack.rollback("m").version == "1"


def test_a_model_managed_with_legacy_stages_is_adopted(store, client):
    for c in (0.01, 100.0):
        nbtrack.register(train_run(C=c), "old")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage("old", "1", "Production")
    # no alias yet: production() reads the stage field an older tool set
    assert nbtrack.production("old").version == "1"
    nbtrack.promote("old", 2)
    assert _aliases(client, "old") == {
        "production": "2",
        "previous_production": "1",
    }
    assert nbtrack.rollback("old").version == "1"


def test_no_deprecation_warnings_from_nbtracks_own_calls(three):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        nbtrack.promote("digits", 2, stage="staging")
        nbtrack.promote("digits", 2)
        nbtrack.rollback("digits")
        nbtrack.archive("digits", 2)
        nbtrack.production("digits")
        models.versions("digits")
    assert not [w for w in seen if issubclass(w.category, (FutureWarning, DeprecationWarning))]


# -- what is in production -----------------------------------------------------------------------


def test_production_answers_the_questions(three, client):
    nbtrack.promote("digits", 3, reason="<b>bigger C</b>")
    prod = nbtrack.production("digits")
    run = client.get_run(three[2])
    assert prod.version == "3" and prod.previous == "1"
    assert prod.run_id == three[2] and prod.run_status == "FINISHED"
    assert prod.metrics == run.data.metrics
    assert prod.promoted_by == models._who() and prod.promoted_at.endswith("Z")
    assert prod.reason == "<b>bigger C</b>"
    assert prod.uri == "models:/digits@production"
    text = repr(prod)
    assert text.startswith("nbtrack model digits @ models:/digits@production: version 3")
    assert "val_acc=" in text and "before   version 1" in text
    page = prod._repr_html_()
    assert "&lt;b&gt;bigger C&lt;/b&gt;" in page and "<b>bigger C</b>" not in page


def test_production_of_a_model_with_none(store):
    nbtrack.register(train_run(), "fresh")
    with pytest.raises(NotFound) as err:
        nbtrack.production("fresh")
    assert str(err.value).startswith("no production version of model 'fresh'")
    with pytest.raises(NotFound, match="no production version of model 'fresh'"):
        nbtrack.load("fresh")


def test_load_uses_the_flavours_loader(three):
    from sklearn.linear_model import LogisticRegression

    assert isinstance(nbtrack.load("digits"), LogisticRegression)
    assert predictions(nbtrack.load("digits", version=3)) == predictions(model(100.0))
    pyfunc = nbtrack.load("digits", flavor="pyfunc")
    assert type(pyfunc).__name__ == "PyFuncModel"


# -- the audit trail -----------------------------------------------------------------------------


def test_the_audit_trail_says_who_when_what_and_why(three, client, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-that-must-not-leak")
    nbtrack.promote("digits", 2, reason="token s3cr3t-value-that-must-not-leak, see ticket 42")
    nbtrack.rollback("digits", reason="alerts")
    trail = nbtrack.audit("digits")
    assert list(trail.columns) == [
        "when",
        "who",
        "action",
        "stage",
        "from_version",
        "to_version",
        "reason",
        "key",
    ]
    assert list(trail["action"]) == ["register"] * 3 + ["promote", "promote", "rollback"]
    last = trail.iloc[-1]
    assert (last["stage"], last["from_version"], last["to_version"]) == ("production", "2", "1")
    assert last["reason"] == "alerts" and last["who"] == models._who()
    assert trail["when"].is_monotonic_increasing and str(trail["when"].dt.tz) == "UTC"
    assert "s3cr3t" not in trail.iloc[-2]["reason"] and "ticket 42" in trail.iloc[-2]["reason"]
    # stored in the registry itself: one registered-model tag per record, JSON, unique keys
    tags = client.get_registered_model("digits").tags
    keys = sorted(k for k in tags if k.startswith("nbtrack.audit."))
    assert keys == list(trail["key"])
    record = json.loads(tags[keys[-1]])
    assert record == {
        "action": "rollback",
        "stage": "production",
        "from": "2",
        "to": "1",
        "who": models._who(),
        "when": record["when"],
        "reason": "alerts",
    }
    everything = json.dumps([tags, *(mv.tags for mv in client.search_model_versions())])
    assert "s3cr3t-value-that-must-not-leak" not in everything


def test_audit_of_an_unknown_model(store):
    with pytest.raises(NotFound):
        nbtrack.audit("nope")


# -- two writers at once -------------------------------------------------------------------------


def _promote_at_once(barrier, name: str, version: str, queue) -> None:
    import time

    start = None
    try:
        barrier.wait(timeout=60)
        start = time.time()
        nbtrack.promote(name, version, reason=f"writer {version}")
        queue.put((version, None, start, time.time()))
    except Exception as e:  # reported to the test, which fails with it
        queue.put((version, repr(e), start, time.time()))


def _set_new_aliases_at_once(barrier, name: str, rounds: int, queue) -> None:
    from nbtrack import store

    errors = []
    for i in range(rounds):
        barrier.wait(timeout=60)
        try:
            store.set_alias(name, f"fresh-{i}", "1")
        except Exception as e:
            errors.append(repr(e))
    queue.put(errors)


def test_a_new_alias_set_by_two_writers_at_once_is_not_an_error(store, client):
    # MLflow's SQL store looks an alias up, then inserts it: at once, one insert breaks the
    # unique key (plain set_registered_model_alias failed 43 of 120 such calls here).
    # nbtrack's tag setters go through the same retry (store._upsert).
    client.create_registered_model("aliased")
    client.create_model_version("aliased", source="/tmp/nothing")
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    writers = [
        ctx.Process(target=_set_new_aliases_at_once, args=(barrier, "aliased", 30, queue))
        for _ in range(2)
    ]
    for w in writers:
        w.start()
    errors = [queue.get(timeout=120) for _ in writers]
    for w in writers:
        w.join(timeout=60)
    assert errors == [[], []]
    aliases = client.get_registered_model("aliased").aliases
    assert {a: str(v) for a, v in aliases.items()} == {f"fresh-{i}": "1" for i in range(30)}


def test_two_promotions_racing_end_consistent_and_both_audited(store, client):
    for c in (0.01, 1.0, 100.0):
        nbtrack.register(train_run(C=c), "race")
    nbtrack.promote("race", 1)
    ctx = multiprocessing.get_context("spawn")  # children start clean (no inherited MLflow state)
    for round_ in range(3):
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        writers = [
            ctx.Process(target=_promote_at_once, args=(barrier, "race", v, queue))
            for v in ("2", "3")
        ]
        before = len(models.audit_records("race"))
        for w in writers:
            w.start()
        reports = [queue.get(timeout=120) for _ in writers]
        for w in writers:
            w.join(timeout=60)
        assert {v: err for v, err, _, _ in reports} == {"2": None, "3": None}, reports
        # they did run at the same time
        assert max(start for _, _, start, _ in reports) < min(end for _, _, _, end in reports)

        rm = client.get_registered_model("race")
        winner = str(rm.aliases["production"])
        assert winner in ("2", "3")
        # both moves are in the trail, intact
        new = models.audit_records("race")[before:]
        assert sorted(r["to_version"] for r in new) == ["2", "3"]
        assert {r["reason"] for r in new} == {"writer 2", "writer 3"}
        # and nothing is corrupt: exactly one version in production, in both views
        stages = _stages(client, "race")
        assert [v for v, s in stages.items() if s == "Production"] == [winner]
        tagged = {
            str(mv.version): mv.tags.get("nbtrack.stage")
            for mv in client.search_model_versions("name='race'")
        }
        assert [v for v, s in tagged.items() if s == "production"] == [winner]
        assert nbtrack.production("race").version == winner
        # the next round starts from version 1 again
        nbtrack.promote("race", 1, reason=f"reset after round {round_}")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        NoModelLogged("abc", "digits", "model"),
        RunNotFinished("digits", "2", "abc", "FAILED"),
        NoPreviousProduction("digits"),
        MoveRefused("digits", "1", "is in production and cannot be archived", "promote first"),
        PermissionDenied("digits", "promote"),
    ],
)
def test_registry_errors_are_one_sentence_and_picklable(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert "\n" not in str(error)
