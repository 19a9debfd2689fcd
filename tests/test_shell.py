"""%%track in an in-process IPython shell (the anywidget way of testing a magic): the parts of
the cell's behaviour that need no kernel process. The contract itself is tested in real kernels
in test_magic.py."""

from __future__ import annotations

import json
import re

import pytest
from IPython.core.interactiveshell import InteractiveShell
from support import all_runs, artifact_text

import nbtrack
from nbtrack.frontends import cell_code, magic, track_line

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(ip, code: str):
    result = ip.run_cell(code, store_history=True)
    return result


def test_cell_keeps_its_namespace_and_last_value(shell, client):
    result = run(shell, "%%track -e ns --no-card\nx = 41\nx + 1")
    assert result.success and result.result == 42
    assert shell.user_ns["x"] == 41
    [r] = all_runs(client, "ns")
    assert r.data.params["x"] == "41"


def test_tracebacks_number_the_cells_lines_as_ipython_numbers_a_cell_magics_body(shell, capsys):
    # the line under %%track is line 1, as under %%time or %%capture, and as without the magic
    result = run(shell, "%%track -e lines --no-card\na = 1\nb = 2\nraise RuntimeError('line 3')")
    assert isinstance(result.error_in_exec, RuntimeError)
    # the user's exception keeps its whole traceback: IPython's run_code, then the cell
    assert result.error_in_exec.__traceback__.tb_next.tb_lineno == 3


def _shown_traceback(ip, code: str, capsys) -> str:
    capsys.readouterr()
    run(ip, code)
    out = capsys.readouterr().out
    return re.sub(r"In\[\d+\]", "In[_]", ANSI.sub("", out))


def test_a_failing_tracked_cell_shows_the_traceback_the_untracked_cell_shows(shell, capsys):
    run(shell, "def divide(v):\n    return 1 / v")
    for body in ("x = 1\n\n1/0", "x = 0\ndivide(x)", "x = 1\n1/"):
        tracked = _shown_traceback(shell, f"%%track -e shown --no-card --no-live\n{body}", capsys)
        assert tracked == _shown_traceback(shell, body, capsys)
        assert "nbtrack" not in tracked and "_begin_cell" not in tracked
    shown = _shown_traceback(shell, "%%track -e shown --no-live\nx = 1\n\n1/0", capsys)
    assert "Cell In[_], line 3" in shown and "----> 3 1/0" in shown


def test_the_recorded_traceback_starts_at_the_users_code(shell, client):
    run(shell, "def divide(v):\n    return 1 / v")
    result = run(shell, "%%track -e tb --no-card\nx = 0\n\ndivide(x)")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    [r] = all_runs(client, "tb")
    assert r.info.status == "FAILED"
    text = artifact_text(client, r.info.run_id, "nbtrack/traceback.txt")
    frames = re.findall(r"line (\d+), in (\S+)\n +(.*)", text)
    assert frames == [("3", "<module>", "divide(x)"), ("2", "divide", "return 1 / v")], text
    assert "IPython" not in text and "nbtrack" not in text and "_begin_cell" not in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")


def test_a_tracked_cell_with_a_syntax_error_starts_no_run(shell, client):
    result = run(shell, "%%track -e syntax --no-card\nx = 1\n1/")
    assert isinstance(result.error_before_exec, SyntaxError)
    assert result.error_before_exec.lineno == 2
    assert run(shell, "y = 1").success
    assert all_runs(client, "syntax") == []


def test_top_level_await_works_in_a_tracked_cell(shell, client):
    result = run(
        shell,
        "%%track -e aw --no-card\nimport asyncio\nawait asyncio.sleep(0.01)\nvalue = 'awaited'",
    )
    assert result.success, result.error_in_exec
    assert shell.user_ns["value"] == "awaited"
    [r] = all_runs(client, "aw")
    assert r.info.status == "FINISHED"


def test_another_cell_magic_can_follow(shell, client):
    result = run(shell, "%%track -e cap --no-card\n%%capture out\nprint('hidden')")
    assert result.success, result.error_in_exec
    assert "hidden" in shell.user_ns["out"].stdout
    assert all_runs(client, "cap")[0].info.status == "FINISHED"


def test_track_config_sets_session_defaults(shell, client):
    run(shell, "%track_config --experiment cfg --tag team=nlp -p stage=dev --no-card")
    shown = shell.run_line_magic("track_config", "")
    assert shown["experiment"] == "cfg" and shown["store"].startswith("sqlite:///")
    run(shell, "%%track -p lr=0.1\npass")
    [r] = all_runs(client, "cfg")
    assert r.data.tags["team"] == "nlp"
    assert r.data.params["stage"] == "dev" and r.data.params["lr"] == "0.1"
    run(shell, "%track_config --reset")
    assert "experiment" not in shell.run_line_magic("track_config", "")


def test_papermill_injected_parameters_become_params(shell, client):
    run(shell, "# Parameters\nlr = 0.3\nepochs = 2\n")
    run(shell, "%%track -e pm --no-card\nbatch = 8")
    [r] = all_runs(client, "pm")
    assert (r.data.params["lr"], r.data.params["epochs"], r.data.params["batch"]) == (
        "0.3",
        "2",
        "8",
    )


def test_store_unreachable_runs_the_cell_untracked_with_one_warning(shell, monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("NBTRACK_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.warns(Warning, match="runs untracked") as caught:
        result = run(shell, "%%track -e down\nimport nbtrack\nnbtrack.log(loss=1.0)\ny = 5")
    assert result.success, result.error_in_exec
    assert shell.user_ns["y"] == 5
    assert len([w for w in caught if "nbtrack" in str(w.filename)]) == 1


def test_disabled_cells_run_untracked(shell, client, monkeypatch):
    monkeypatch.setenv("NBTRACK_DISABLE", "1")
    result = run(shell, "%%track -e off\nimport nbtrack\nnbtrack.log(loss=1.0)\nz = 1")
    assert result.success and shell.user_ns["z"] == 1
    assert all_runs(client) == []


def test_mlflow_info_logging_stays_out_of_the_output(shell, capsys):
    run(shell, "%%track -e quiet --no-card\nimport mlflow\nmlflow.log_param('p', 1)")
    captured = capsys.readouterr()
    assert "INFO" not in captured.out + captured.err


def test_transformer_leaves_other_cells_alone():
    lines = ["%%trackers = 1\n", "x = 2\n"]
    assert magic.transform(lines) == lines
    assert magic.transform(["x = 1\n"]) == ["x = 1\n"]
    assert magic.transform(["%%track -e a\n", "x = 1\n"]) == ["x = 1\n"]
    assert cell_code._pending.args == "-e a"  # for the call put in front of the parsed cell
    cell_code.forget()


def test_a_cell_transformed_but_not_run_tracks_no_later_cell(shell, client):
    shell.transform_cell("%%track -e stale\nx = 1\n")  # as a tool inspecting the cell would
    assert run(shell, "y = 1").success
    assert all_runs(client, "stale") == []


def test_parse_line_flags():
    spec, cell = track_line.parse_line(
        "-e exp -n name -s 3 -d a.csv -d b/ -p lr=0.1 -p opt=a=b --tag t=1 --no-auto-params "
        "--nested --no-live --no-card"
    )
    assert (spec.experiment, spec.name, spec.seed) == ("exp", "name", 3)
    assert spec.data == ["a.csv", "b/"]
    assert spec.params == {"lr": "0.1", "opt": "a=b"}
    assert spec.tags == {"t": "1"}
    assert not spec.auto_params and spec.nested and not cell.live and not cell.card


def test_run_block_in_a_cell_records_that_cell_even_without_history(shell, client):
    import json

    from support import artifact_text

    code = "import nbtrack\nwith nbtrack.run(experiment='block') as r:\n    q = 1\n"
    result = shell.run_cell(code, store_history=False)  # as nbval runs cells
    assert result.success, result.error_in_exec
    [run] = all_runs(client, "block")
    assert artifact_text(client, run.info.run_id, "nbtrack/cell.py") == code
    assert json.loads(artifact_text(client, run.info.run_id, "nbtrack/environment.json"))


def test_load_ext_puts_nbtrack_in_the_namespace_so_the_readme_example_runs(shell, client):
    # The README's first example calls nbtrack.log in a tracked cell without importing nbtrack.
    result = run(
        shell,
        "%%track -e readme --no-card\n"
        "for step in range(3):\n"
        "    nbtrack.log(step=step, loss=1.0 / (step + 1))",
    )
    assert result.success, result.error_in_exec
    [r] = all_runs(client, "readme")
    assert r.info.status == "FINISHED" and r.data.metrics["loss"] == 1.0 / 3


def test_load_ext_leaves_a_name_the_user_took():
    ip = InteractiveShell.instance()
    try:
        ip.user_ns["nbtrack"] = "mine"
        ip.run_cell("%load_ext nbtrack")
        assert ip.user_ns["nbtrack"] == "mine"
        ip.run_cell("%unload_ext nbtrack")
    finally:
        InteractiveShell.clear_instance()


def test_seeded_cells_get_distinct_run_names(shell, client):
    # MLflow draws run names from the global random module, which --seed seeds: nbtrack names them.
    for _ in range(3):
        assert run(
            shell, "%%track -e names --seed 7 --no-card\nimport random\nx = random.random()"
        ).success
    runs = all_runs(client, "names")
    assert len({r.info.run_name for r in runs}) == 3
    assert len({r.data.params["random_seed"] for r in runs}) == 1


def test_note_flag_sets_the_runs_description(shell, client):
    assert run(shell, '%%track -e noted --no-card --note "warm-up, lr 0.1"\nx = 1').success
    [r] = all_runs(client, "noted")
    assert r.data.tags["mlflow.note.content"] == "warm-up, lr 0.1"
    df = nbtrack.runs("noted")
    assert df["note"].tolist() == ["warm-up, lr 0.1"]


def test_the_users_own_param_logging_wins_over_what_the_cell_says(shell, client):
    # papermill injected alpha = 1; the notebook logs float(alpha) itself, as MLflow's examples do
    cell = (
        "%%track -e own --no-card\n"
        "alpha = 1\n"
        "l1_ratio = 0.5\n"
        "import mlflow\n"
        "mlflow.log_param('alpha', float(alpha))\n"
    )
    result = run(shell, cell)
    assert result.success, result.error_in_exec
    [r] = all_runs(client, "own")
    assert r.data.params["alpha"] == "1.0"  # the user's value
    assert r.data.params["l1_ratio"] == "0.5"  # what the cell says, where the user said nothing
    sources = json.loads(artifact_text(client, r.info.run_id, "nbtrack/params.json"))
    assert sources["alpha"] == {"value": "1.0", "source": "user", "captured": "1"}
    assert sources["l1_ratio"]["source"] == "cell"
    assert sources["random_seed"]["source"] == "nbtrack"


def test_a_training_function_from_an_earlier_cell_logs_its_own_params(shell, client):
    # MLflow's examples define train() in one cell and call it from another
    define = (
        "import mlflow\n"
        "def train(alpha):\n"
        "    mlflow.log_param('alpha', float(alpha))\n"
        "    mlflow.log_metric('rmse', 0.5)\n"
    )
    assert run(shell, define).success
    result = run(shell, "%%track -e fn --no-card\nalpha = 1\ntrain(alpha)")
    assert result.success, result.error_in_exec
    [r] = all_runs(client, "fn")
    assert r.data.params["alpha"] == "1.0" and r.data.metrics["rmse"] == 0.5


def test_which_code_may_log_params_itself():
    from nbtrack.tracking.params import user_may_log_params

    assert user_may_log_params("mlflow.log_params(p)", [])
    assert user_may_log_params("fit()", ["mlflow.sklearn.autolog()"])
    assert user_may_log_params("train()", ["def train():\n    mlflow.log_param('a', 1)"])
    # a top-level call in an earlier cell logged into another run
    assert not user_may_log_params("x = 1", ["mlflow.log_params({'a': 1})"])


# --- params read from the namespace (issue #12) -------------------------------------------------


def _sources(client, run) -> dict:
    return json.loads(artifact_text(client, run.info.run_id, "nbtrack/params.json"))


def test_a_value_an_earlier_cell_bound_and_the_cell_reads_is_a_param(shell, client):
    assert run(shell, "n_estimators = 500\nunused = 7\nimport math").success
    result = run(shell, "%%track -e ns-read --no-card\nscore = n_estimators * math.pi")
    assert result.success, result.error_in_exec
    [r] = all_runs(client, "ns-read")
    assert r.data.params["n_estimators"] == "500"
    assert "unused" not in r.data.params and "math" not in r.data.params
    assert "score" not in r.data.params  # not a literal
    assert _sources(client, r)["n_estimators"] == {"value": "500", "source": "namespace"}


def test_dicts_become_dotted_params_that_mlflow_can_filter_on(shell, client):
    assert run(shell, "params = {'n_estimators': 500, 'model': {'depth': 3}}").success
    cell = "%%track -e ns-dict --no-card\ncfg = {'lr': 0.1, 'opt': 'adam'}\nfit = (params, cfg)"
    assert run(shell, cell).success
    assert run(shell, "params = {'n_estimators': 100, 'model': {'depth': 3}}").success
    assert run(shell, cell).success
    exp = client.get_experiment_by_name("ns-dict").experiment_id
    [found] = client.search_runs([exp], filter_string="params.n_estimators = '500'")
    p = found.data.params
    assert (p["model.depth"], p["lr"], p["opt"]) == ("3", "0.1", "adam")
    assert "params" not in p and "cfg" not in p
    assert len(client.search_runs([exp], filter_string="params.`model.depth` = '3'")) == 2
    sources = _sources(client, found)
    assert sources["n_estimators"]["source"] == "namespace" and sources["lr"]["source"] == "cell"


def test_a_namespace_full_of_constants_gives_at_most_100_params_and_a_note(shell, client, capsys):
    names = [f"const_{i}" for i in range(300)]
    assert run(shell, "\n".join(f"{n} = {i}" for i, n in enumerate(names))).success
    capsys.readouterr()
    cell = f"%%track -e ns-cap --no-card --no-live\nlr = 0.1\ntotal = sum([{', '.join(names)}])"
    assert run(shell, cell).success
    assert capsys.readouterr().out == ""  # nothing printed in the notebook
    [r] = all_runs(client, "ns-cap")
    sources = _sources(client, r)
    found = [k for k, v in sources.items() if v.get("source") in ("cell", "namespace")]
    assert len(found) == 100 and sources["lr"]["source"] == "cell"
    assert all(f"const_{i}" in r.data.params for i in range(99))
    assert "const_99" not in r.data.params
    assert sources["(dropped)"]["count"] == 201 and "100" in sources["(dropped)"]["reason"]


def test_no_auto_params_reads_nothing_from_the_namespace(shell, client):
    assert run(shell, "depth = 4\nparams = {'n_estimators': 500}").success
    assert run(shell, "%%track -e ns-off --no-card --no-auto-params\nfit = (depth, params)").success
    [r] = all_runs(client, "ns-off")
    assert not {"depth", "n_estimators", "params"} & set(r.data.params)
    assert "random_seed" in r.data.params


def test_the_users_own_logging_wins_over_the_namespace(shell, client):
    assert run(shell, "alpha = 1\nconfig = {'l1_ratio': 0.5, 'max_iter': 10}").success
    cell = (
        "%%track -e ns-own --no-card\n"
        "import mlflow\n"
        "mlflow.log_param('alpha', float(alpha))\n"
        "mlflow.log_params({'l1_ratio': config['l1_ratio'] * 2})\n"
    )
    result = run(shell, cell)
    assert result.success, result.error_in_exec
    [r] = all_runs(client, "ns-own")
    assert r.info.status == "FINISHED"
    p = r.data.params
    assert (p["alpha"], p["l1_ratio"], p["max_iter"]) == ("1.0", "1.0", "10")
    sources = _sources(client, r)
    assert sources["alpha"] == {"value": "1.0", "source": "user", "captured": "1"}
    assert sources["max_iter"]["source"] == "namespace"


def test_a_secret_read_from_the_environment_is_redacted(shell, client, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "correct-horse-battery-staple")
    assert run(shell, "import os\nconn = os.environ['MY_SERVICE_PASSWORD']").success
    assert run(shell, "%%track -e ns-secret --no-card\nlen(conn)").success
    [r] = all_runs(client, "ns-secret")
    assert "correct-horse" not in json.dumps(r.data.params)
    assert "correct-horse" not in artifact_text(client, r.info.run_id, "nbtrack/params.json")
