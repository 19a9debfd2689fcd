"""Notebooks written for plain MLflow (tests/realworld/), under the launchers people use (issue
#12): each runs untracked and tracked; the tracked run names its notebook (path, hash, snapshot),
holds the params, metrics and model the notebook logs, children in the right experiment, and
reproduces. Nothing here tells the kernel its notebook (no JPY_SESSION_NAME)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from support import ROOT, all_runs, artifact_text

REALWORLD = ROOT / "tests" / "realworld"
BIN = Path(sys.executable).parent
PAPERMILL_ALPHA = {"alpha": 1}  # an int, as `-p alpha 1` gives it
LAUNCHERS = [
    "papermill",
    "papermill-api",
    "papermill-api-cwd",
    "papermill-from-notebook",
    "nbconvert",
    "nbclient",
    "nbval",
]


def _env(store: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_"))}
    env.pop("JPY_SESSION_NAME", None)
    return {**env, "NBTRACK_TRACKING_URI": store, "MLFLOW_TRACKING_URI": store}


def untracked(src: Path, dest: Path) -> Path:
    """The same notebook without nbtrack: what a user had before adding two lines."""
    nb = nbformat.read(src, as_version=4)
    nb.cells = [c for c in nb.cells if c.source.strip() != "%load_ext nbtrack"]
    for c in nb.cells:
        if c.cell_type == "code" and c.source.startswith("%%track"):
            c.source = c.source.split("\n", 1)[1]
    nbformat.write(nb, dest)
    return dest


def launch(how: str, nb: Path, work: Path, env: dict[str, str], params: dict | None = None):
    """Run ``nb`` the way ``how`` does, from ``work`` (the user's shell is there)."""
    out = work / f"out-{nb.stem}-{how}.ipynb"
    rel = os.path.relpath(nb, work)
    params = params or {}
    if how == "papermill":
        cmd = [str(BIN / "papermill"), "--no-progress-bar", rel, str(out)]
        for k, v in params.items():
            cmd += ["-p", k, str(v)]
    elif how in ("papermill-api", "papermill-api-cwd"):
        cwd = f", cwd={str(nb.parent)!r}" if how == "papermill-api-cwd" else ""
        code = (
            "import papermill as pm\n"
            f"pm.execute_notebook({rel!r}, {str(out)!r}, parameters={params!r}, "
            f"progress_bar=False{cwd})\n"
        )
        cmd = [sys.executable, "-c", code]
    elif how == "papermill-from-notebook":
        # A driver notebook (run by nbclient) that calls papermill: the kernel's launcher is
        # another kernel.
        driver = work / f"driver-{nb.stem}.ipynb"
        call = f"pm.execute_notebook({rel!r}, {str(out)!r}, parameters={params!r})"
        nbformat.write(
            nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_code_cell(f"import papermill as pm\n{call}")]
            ),
            driver,
        )
        code = (
            "import nbformat\nfrom nbclient import NotebookClient\n"
            f"nb = nbformat.read({str(driver)!r}, as_version=4)\n"
            "NotebookClient(nb, kernel_name='python3', timeout=600).execute()\n"
        )
        cmd = [sys.executable, "-c", code]
    elif how == "nbconvert":
        cmd = [str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", rel]
        cmd += ["--output", out.stem, "--output-dir", str(work)]
    elif how == "nbclient":
        code = (
            "import nbformat\nfrom nbclient import NotebookClient\n"
            f"nb = nbformat.read({rel!r}, as_version=4)\n"
            f"NotebookClient(nb, kernel_name='python3', resources={{'metadata': "
            f"{{'path': {str(nb.parent)!r}}}}}).execute()\n"
            f"nbformat.write(nb, {str(out)!r})\n"
        )
        cmd = [sys.executable, "-c", code]
    elif how == "nbval":
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax"]
        cmd += [os.path.relpath(nb.parent, work)]
    else:
        raise ValueError(how)
    env = {**env, "PWD": str(work)}  # as the user's shell would say
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{how} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def tracked_runs(client, experiment: str) -> list:
    return [r for r in all_runs(client, experiment) if "mlflow.parentRunId" not in r.data.tags]


def tracked_run(client, experiment: str):
    runs = tracked_runs(client, experiment)
    assert len(runs) == 1, [(r.info.run_name, r.data.tags.get("mlflow.source.name")) for r in runs]
    return runs[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_names_its_notebook(client, run, nb: Path) -> None:
    tags = run.data.tags
    assert tags["mlflow.source.name"] == str(nb.resolve()), tags.get("nbtrack.notebook")
    assert tags["nbtrack.notebook.sha256"] == sha256(nb)
    snapshot = artifact_text(client, run.info.run_id, "nbtrack/notebook.ipynb")
    assert hashlib.sha256(snapshot.encode()).hexdigest() == sha256(nb)  # byte for byte
    assert tags["nbtrack.notebook.snapshot"] == "exact"


@pytest.fixture
def work(tmp_path):
    """The user's project: the notebooks in a folder below the shell's working directory."""
    (tmp_path / "nbs").mkdir()
    return tmp_path


@pytest.mark.parametrize("how", LAUNCHERS)
def test_elasticnet_notebook_under_every_launcher(how, work, store, client):
    env = _env(store)
    plain = untracked(REALWORLD / "elasticnet_wine.ipynb", work / "nbs" / "elasticnet_wine.ipynb")
    launch(how, plain, work, env, PAPERMILL_ALPHA if how.startswith("papermill") else None)
    [before] = all_runs(client, "Default")  # plain MLflow: one run in Default
    for f in (work / "nbs").glob("*.ipynb"):
        f.unlink()

    nb = work / "nbs" / "elasticnet_wine.ipynb"
    shutil.copy(REALWORLD / nb.name, nb)
    launch(how, nb, work, env, PAPERMILL_ALPHA if how.startswith("papermill") else None)
    run = tracked_run(client, "elasticnet_wine")
    assert_names_its_notebook(client, run, nb)
    sources = json.loads(artifact_text(client, run.info.run_id, "nbtrack/params.json"))
    if how.startswith("papermill"):
        # papermill injected alpha = 1; the notebook logs float(alpha) itself: the user's wins
        assert run.data.params["alpha"] == "1.0"
        assert sources["alpha"] == {"value": "1.0", "source": "user", "captured": "1"}
    else:
        assert run.data.params["alpha"] == "0.5"
    assert run.data.params["l1_ratio"] == "0.5"
    assert run.data.metrics["rmse"] > 0 and "r2" in run.data.metrics
    assert run.info.run_name != before.info.run_name
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    assert [m.name for m in models] == ["model"]
    if how.startswith("papermill"):
        assert run.data.tags["nbtrack.notebook.output"].endswith(f"out-{nb.stem}-{how}.ipynb")
    assert run.data.tags["mlflow.note.content"].startswith("## Train")
    assert len(all_runs(client, "Default")) == 1  # nothing of the tracked notebook went there


@pytest.mark.parametrize("how", LAUNCHERS)
def test_autolog_and_nested_notebook(how, work, store, client):
    env = _env(store)
    plain = untracked(REALWORLD / "gbr_autolog_nested.ipynb", work / "nbs" / "gbr.ipynb")
    launch(how, plain, work, env)
    plain.unlink()

    nb = work / "nbs" / "gbr_autolog_nested.ipynb"
    shutil.copy(REALWORLD / nb.name, nb)
    launch(how, nb, work, env)
    run = tracked_run(client, "gbr_autolog_nested")
    assert_names_its_notebook(client, run, nb)
    children = [
        r
        for r in all_runs(client, "gbr_autolog_nested")
        if r.data.tags.get("mlflow.parentRunId") == run.info.run_id
    ]
    assert sorted(c.info.run_name for c in children) == ["fold-0", "fold-1", "fold-2"]
    assert all("fold_r2" in c.data.metrics for c in children)
    assert "mean_r2" in run.data.metrics
    generated = [r.info.run_name for r in all_runs(client)]
    generated = [n for n in generated if not n.startswith("fold")]
    assert len(set(generated)) == len(generated)  # MLflow's names untracked, nbtrack's tracked
    assert run.data.params["n_estimators"] == "25"  # autolog's final fit, and nbtrack agrees
    assert run.data.params["max_depth"] == "3"


def test_twin_notebooks_each_name_their_own(work, store, client):
    """Identical tracked cells in one folder, run one after the other: papermill's CLI and API
    name the right one; nbclient from a script, with two notebooks holding the same cells,
    names none and says why (never the wrong one)."""
    env = _env(store)
    twins = []
    for name in ("twin_a", "twin_b"):
        nb = work / "nbs" / f"{name}.ipynb"
        shutil.copy(REALWORLD / "elasticnet_wine.ipynb", nb)
        twins.append(nb)
    for how in ("papermill", "papermill-api"):
        for nb in twins:
            launch(how, nb, work, env)
    for nb in twins:  # each notebook's runs are in its own experiment (its name)
        runs = tracked_runs(client, nb.stem)
        assert [r.data.tags.get("mlflow.source.name") for r in runs] == [str(nb)] * 2
    for out in work.glob("out-*.ipynb"):
        out.unlink()

    launch("nbclient", twins[0], work, env)
    [last] = tracked_runs(client, "Default")
    assert last.data.tags["nbtrack.notebook"].startswith("none: 2 notebooks hold the cells")
    assert last.data.tags["mlflow.source.name"].endswith("ipykernel_launcher.py")  # MLflow's


@pytest.mark.parametrize("name", ["elasticnet_wine", "gbr_autolog_nested"])
def test_reproduce_a_papermill_run(name, work, store, client):
    env = _env(store)
    nb = work / "nbs" / f"{name}.ipynb"
    shutil.copy(REALWORLD / nb.name, nb)
    launch("papermill", nb, work, env, {"alpha": 0.3} if name == "elasticnet_wine" else None)
    run = tracked_run(client, name)
    code = (
        "import sys, nbtrack\n"
        f"r = nbtrack.reproduce({run.info.run_id!r})\n"
        "print('VERDICT', r.verdict)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True
    )
    assert "VERDICT REPRODUCED" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_plain_ipython_records_history_and_says_so_once(store, client, tmp_path):
    """A terminal IPython has no notebook: the runs keep the session's cells, and one line (once
    a session) says so; no curves placeholder is printed."""
    cells = ["%load_ext nbtrack", "%%track -e shell\nx = 1", "%%track -e shell\ny = 2"]
    code = f"for cell in {cells!r}:\n    get_ipython().run_cell(cell, store_history=True)\n"
    result = subprocess.run(
        [str(BIN / "ipython"), "--no-banner", "--colors=NoColor", "-c", code],
        cwd=tmp_path,
        env=_env(store),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert said.count("no notebook in a terminal IPython") == 1, said
    assert "curves of run" not in said
    runs = all_runs(client, "shell")
    assert len(runs) == 2
    assert runs[-1].data.tags["nbtrack.notebook"].startswith("none: a plain IPython shell")
    history = artifact_text(client, runs[-1].info.run_id, "nbtrack/history.py")
    assert "x = 1" in history and "y = 2" in history


def test_a_long_command_line_does_not_stop_tracking(store, client, tmp_path):
    """The launcher is a script given with ``python -c`` longer than a file name may be."""
    nb = tmp_path / "long.ipynb"
    cells = ["%load_ext nbtrack", "%%track -e long\nx = 1"]
    new_cell = nbformat.v4.new_code_cell
    nbformat.write(nbformat.v4.new_notebook(cells=[new_cell(c) for c in cells]), nb)
    padding = "# " + "x" * 400 + "\n"
    code = (
        f"{padding}import nbformat\nfrom nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(nb)!r}, as_version=4)\n"
        "NotebookClient(nb, kernel_name='python3').execute()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(store), check=True)
    [run] = all_runs(client, "long")
    assert run.data.tags["mlflow.source.name"] == str(nb)


def test_a_cell_ending_in_a_newline_names_its_notebook(store, client, tmp_path):
    """IPython's history drops a cell's trailing newlines; the cell being run keeps them. Tools
    write cells that end in one: the cell must not count twice in the kernel's history."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    nb = work / "trailing.ipynb"
    cells = ["%load_ext nbtrack\n", "%%track -e trailing\nx = 1\n"]
    new_cell = nbformat.v4.new_code_cell
    nbformat.write(nbformat.v4.new_notebook(cells=[new_cell(c) for c in cells]), nb)
    code = (
        "import papermill as pm\n"
        f"pm.execute_notebook({str(nb)!r}, {str(work / 'out.ipynb')!r}, progress_bar=False, "
        f"kernel_name='python3', cwd={str(work)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(store), check=True)
    [run] = all_runs(client, "trailing")
    assert run.data.tags["mlflow.source.name"] == str(nb)
