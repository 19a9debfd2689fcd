"""The run record's contract (nbtrack/record.py)."""

from nbtrack import record


def test_contract_names_unique_and_table_in_order():
    # A name may be both a run param and a version tag (git_commit): unique per kind.
    keys = [(f.name, f.kind) for f in record.CONTRACT]
    assert len(keys) == len(set(keys))
    assert all(f.kind in ("tag", "param", "artifact", "version tag") for f in record.CONTRACT)
    lines = record.markdown_table().splitlines()
    assert lines[0] == "| name | kind | meaning |"
    assert len(lines) == 2 + len(record.CONTRACT)
    for line, f in zip(lines[2:], record.CONTRACT, strict=True):
        assert line == f"| `{f.name}` | {f.kind} | {f.meaning} |"


def test_every_constant_is_in_the_contract():
    prefixes = ("TAG_", "PARAM_", "ARTIFACT_", "VERSION_TAG_")
    consts = {v for k, v in vars(record).items() if k.startswith(prefixes)}
    assert consts == {f.name for f in record.CONTRACT}


def test_runview_derived_fields():
    base = dict(
        run_id="r",
        experiment_id="0",
        name="n",
        status="FINISHED",
        start_time=1,
        end_time=2,
        artifact_uri="file:///a",
    )
    v = record.RunView(
        **base,
        params={"git_commit": "p", "data_hash": "d"},
        tags={"mlflow.source.git.commit": "t", "mlflow.user": "u", "mlflow.source.name": "nb"},
    )
    assert (v.commit, v.user, v.notebook, v.data_hash) == ("t", "u", "nb", "d")
    assert record.RunView(**base, params={"git_commit": "p"}).commit == "p"
    assert record.RunView(**base).commit is None
