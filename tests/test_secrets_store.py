"""Issue 14, adversarially: plant secrets the ways people leak them, run the notebook tracked, then
search the WHOLE store (an SQL dump of the database, every artifact file) for each planted value.

The notebook is run twice, as an interactive user's saved notebook would be: pass 1 untracked
(``NBTRACK_DISABLE=1``) writes its outputs over the notebook file, because nbtrack snapshots the
file on disk; pass 2 tracks every ``%%track`` cell into a fresh store.

Fake credentials are assembled at run time (``"ghp_" + ...``) so this file holds no string that a
secret scanner would flag on push; they have the exact shape of the real thing.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell
from support import code_notebook

from nbtrack import record


def planted(n: int) -> str:
    return f"S3cr3tValue-{n}-Zq9"


ALNUM = "Zq9mN2pQ4rS6tU8vW0xY"  # mixed letters and digits, to pad token shapes

GHP_NAME = "ghp_" + "Rn3NameTok" + ALNUM + "aBcDeF"  # 36 after the prefix
GHP_SRC = "ghp_" + "Sr3SrcTok0" + ALNUM + "gHiJkL"
SLACK = "xoxb-" + "123456789012-" + "S3cr3tSlack" + ALNUM
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJ" + "zdWIiOiJaUTkxMjM0NSJ9" + ".S3cr3tJwtSig" + ALNUM
PEM_BODY = "MIIEowIBAAKCAQEA" + "S3cr3tPemBody" + ALNUM + "Kq9Lm3Np5Qr7St9Uv1Wx3Yz5"
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA " + "PRIVATE KEY-----"
AWS_KEY_ID = "AKIA" + "S3CR3TZQ9ABCD123"  # 16 after the prefix
HF_TOKEN = "hf_" + "S3cr3tHug" + ALNUM + "abcdef"  # 35 after the prefix


@dataclass(frozen=True)
class Case:
    name: str
    value: str
    leaks_today: bool  # one of the 8 leaks (the test fails on them until they are fixed)
    allowed: frozenset[str] = frozenset()  # places it may be found, by design


# The kernel's environment: a secret-named variable whose value a cell copies (a leak), and one
# that is only printed (kept out).
ENV = {"MY_DB_PASSWORD": planted(1), "MY_API_TOKEN": planted(15)}
DIRTY_FILES = {
    "client.py": ('auth=("admin", "{}")\n', planted(7)),
    "config.py": ('API_TOKEN = "{}"\n', planted(17)),
}
REMOTE_TOKEN = "S3cr3tRemote" + ALNUM
MODEL = "adv-model"

CASES = [
    # --- the 8 leaks ---
    Case("env secret value assigned to a neutral name (db = ...)", planted(1), True),
    Case("%%track -t api_token=...", planted(2), True),
    Case("%%track --name run-ghp_...", GHP_NAME, True),
    Case("secret-named literal's value in an exception message", planted(4), True),
    Case("DataFrame with a password column, printed and displayed", planted(5), True),
    Case("ODBC connection string ;Pwd=...;", planted(6), True),
    Case('auth=("admin", ...) in a dirty tracked file', planted(7), True),
    # The user's own MLflow call cannot be intercepted (issue 14, point 3): the param is stored as
    # given, and the card warns; its source and echoed output must not keep the value.
    Case(
        'mlflow.log_param("smtp_password", ...)',
        planted(8),
        True,
        frozenset({"table params (key 'smtp_password')"}),
    ),
    # --- 21 kept out (keep it so) ---
    Case("%%track -p password=...", planted(11), False),
    Case("secret-named literal api_key = ...", planted(12), False),
    Case('dict {"api_key": ...}', planted(13), False),
    Case("URL password postgres://u:...@h/db", planted(14), False),
    Case("secret env var MY_API_TOKEN, printed", planted(15), False),
    Case("printed password=...", planted(16), False),
    Case("API_TOKEN = ... in the git diff", planted(17), False),
    Case("f-string Bearer token in a headers dict", planted(18), False),
    Case("ghp_ token in source (neutral name)", GHP_SRC, False),
    Case("xoxb- token in source (neutral name)", SLACK, False),
    Case("JWT in source (neutral name)", JWT, False),
    Case("PEM private key in source (neutral name)", PEM_BODY, False),
    Case("AWS access key id (neutral name)", AWS_KEY_ID, False),
    Case("Hugging Face token (neutral name)", HF_TOKEN, False),
    Case("git remote URL token", REMOTE_TOKEN, False),
    Case("promote reason", planted(24), False),
    Case('os.environ["SERVICE_PASSWORD"] = ...', planted(25), False),
    Case("!echo --password ... shell line", planted(26), False),
    Case("?token=... query string", planted(27), False),
    Case("markdown note above a tracked cell: password: ...", planted(28), False),
    Case("nbtrack.log_params(db_password=...)", planted(29), False),
]

TRACKED_CELLS = [
    # leaks
    f'%%track\ndb = "{planted(1)}"\nn_rows = 10\nprint(n_rows)',
    f"%%track -t api_token={planted(2)}\ny = 2",
    f"%%track --name run-{GHP_NAME}\nz = 3",
    "%%track\nimport pandas as pd\n"
    f'df = pd.DataFrame({{"user": ["alice"], "password": ["{planted(5)}"]}})\nprint(df)\ndf',
    f'%%track\nconn_str = "Driver={{x}};Server=s;Uid=svc;Pwd={planted(6)};"\nprint(len(conn_str))',
    f'%%track\nimport mlflow\nmlflow.log_param("smtp_password", "{planted(8)}")',
    # kept out
    f"%%track -p password={planted(11)}\nw = 1",
    f'%%track\napi_key = "{planted(12)}"\nprint(len(api_key))',
    f'%%track\ncfg = {{"api_key": "{planted(13)}", "rows": 3}}',
    f'%%track\nurl = "postgres://u:{planted(14)}@h/db"',
    '%%track\nimport os\nprint(os.environ["MY_API_TOKEN"])',
    f'%%track\nprint("password={planted(16)}")',
    f'%%track\nheaders = {{"Authorization": f"Bearer {planted(18)}"}}\nprint(len(headers))',
    f'%%track\ngh = "{GHP_SRC}"\nslack = "{SLACK}"\nprint(len(gh) + len(slack))',
    f'%%track\nclaims = "{JWT}"\nprint(len(claims))',
    f'%%track\npem = """{PEM}"""\nprint(len(pem))',
    f'%%track\nkey_id = "{AWS_KEY_ID}"\nhub = "{HF_TOKEN}"\nprint(len(key_id), len(hub))',
    f'%%track\nimport os\nos.environ["SERVICE_PASSWORD"] = "{planted(25)}"',
    f"%%track\n!echo --password {planted(26)}",
    f'%%track\nendpoint = "https://api.example.com/v1/items?token={planted(27)}&page=2"',
    f'%%track\nimport nbtrack\nnbtrack.log_params(db_password="{planted(29)}")',
]
NOTE_CELL = "%%track\nnoted = 1"
REGISTER_CELL = (
    f"%%track --register {MODEL}\n"
    "import mlflow\nimport numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
    "X = np.arange(20.0).reshape(10, 2)\n"
    "mlflow.sklearn.log_model(\n"
    "    LogisticRegression().fit(X, [0, 1] * 5), name='model', pip_requirements=['scikit-learn']\n"
    ")"
)
# Pass 1 is untracked: nothing was registered, there is nothing to promote.
PROMOTE_CELL = (
    "import os\nimport nbtrack\n"
    'if os.environ.get("NBTRACK_DISABLE") != "1":\n'
    f'    nbtrack.promote("{MODEL}", 1, reason="smoke test ran with password={planted(24)}")'
)
# Last: it fails, and papermill stops there.
RAISING_CELL = (
    f'%%track\nsecret_val = "{planted(4)}"\n'
    'raise ValueError(f"could not connect with {secret_val}")'
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(root: Path, dirty: dict[str, tuple[str, str]], remote_token: str) -> Path:
    """A git repository with a commit, tracked files left dirty with these lines, and an origin
    whose URL carries a token."""
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "adv@example.com")
    _git(repo, "config", "user.name", "adv")
    for name in dirty:
        (repo / name).write_text("value = 0\n")
    (repo / "README.md").write_text("adversarial\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    _git(repo, "remote", "add", "origin", f"https://user:{remote_token}@example.com/o/r.git")
    for name, (line, value) in dirty.items():
        (repo / name).write_text("value = 0\n" + line.format(value))
    return repo


def run_twice(nb: Path, repo: Path, tmp_path: Path, monkeypatch, template_db: Path, fails: str):
    """Pass 1 untracked, its outputs saved over ``nb``; pass 2 tracked into the ``store`` fixture's
    store. Each pass must stop at the notebook's last cell, raising ``fails``. The kernels inherit
    this process's environment."""
    import papermill
    from mlflow import MlflowClient

    def execute(out: Path) -> None:
        with pytest.raises(papermill.PapermillExecutionError) as failed:
            papermill.execute_notebook(
                str(nb), str(out), kernel_name="python3", cwd=str(repo), progress_bar=False
            )
        # the notebook's last cell failed as planted, and every cell before it ran
        assert (failed.value.ename, failed.value.cell_index) == (fails, last), failed.value

    last = len(nbformat.read(nb, as_version=4).cells) - 1

    # Pass 1: the user's own MLflow calls go to a throwaway store outside the repository.
    throwaway = tmp_path / "pass1" / "mlflow.db"
    throwaway.parent.mkdir()
    shutil.copy(template_db, throwaway)
    uri = f"sqlite:///{throwaway}"
    exp = MlflowClient(uri).create_experiment("pass1", (throwaway.parent / "art").as_uri())
    with monkeypatch.context() as m:
        m.setenv("NBTRACK_DISABLE", "1")
        m.setenv("MLFLOW_TRACKING_URI", uri)
        m.setenv("NBTRACK_TRACKING_URI", uri)
        m.setenv("MLFLOW_EXPERIMENT_ID", exp)
        execute(nb)
    # What a user saves has no papermill metadata (a notebook naming its papermill input is taken
    # for an output notebook, and is not a candidate for the kernel's notebook), nor the banner
    # papermill puts above the failed cell (it would be that cell's note).
    saved = nbformat.read(nb, as_version=4)
    saved.metadata.pop("papermill", None)
    saved.cells = [
        c for c in saved.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])
    ]
    nbformat.write(saved, nb)
    # Pass 2, tracked; its output beside the input, in the kernel's working directory, names it.
    execute(repo / f"{nb.stem}.out.ipynb")


# --- searching the store ----------------------------------------------------------------------


def store_paths(db: Path) -> tuple[list[str], list[Path]]:
    """The database's SQL dump, and every artifact root it names (experiments, logged models)."""
    con = sqlite3.connect(db)
    try:
        dump = list(con.iterdump())
        # the Default experiment's root is where the template database was made; no run uses it
        query = "select artifact_location from experiments where name != 'Default'"
        roots = {r for (r,) in con.execute(query)}
        roots |= {r for (r,) in con.execute("select artifact_location from logged_models")}
    finally:
        con.close()
    dirs = []
    for root in roots:
        path = Path(unquote(urlparse(root).path)) if root.startswith("file:") else Path(root)
        if path.is_dir():
            dirs.append(path)
    dirs.append(db.parent)  # the store's own folder (mlruns beside the database)
    return dump, dirs


def _forms(value: str) -> list[bytes]:
    forms = {value.encode(), json.dumps(value)[1:-1].encode()}
    return sorted(forms)


def _table(line: str) -> str:
    if line.startswith('INSERT INTO "'):
        table = line.split('"')[1]
        if table in (
            "params",
            "tags",
            "latest_tags",
            "model_version_tags",
            "registered_model_tags",
        ):
            key = line.split("'")[1]
            return f"table {table} (key {key!r})"
        return f"table {table}"
    return f"SQL: {line[:60]}"


def _artifact_place(path: Path) -> str:
    parts = path.parts
    if "artifacts" in parts:  # <experiment>/<run id>/artifacts/<path>: the run id left out
        return "artifact " + "/".join(parts[parts.index("artifacts") + 1 :])
    return "file " + "/".join(parts[-3:])


def where_found(values: list[str], dump: list[str], dirs: list[Path]) -> dict[str, Counter]:
    """For each value, the places it was found and how often (tables; artifact paths, counted
    once per run)."""
    found: dict[str, Counter] = {v: Counter() for v in values}
    forms = {v: _forms(v) for v in values}
    for line in dump:
        data = line.encode()
        for v in values:
            if any(f in data for f in forms[v]):
                found[v][_table(line)] += 1
    seen: set[Path] = set()
    for root in dirs:
        for path in root.rglob("*"):
            if not path.is_file() or path in seen or path.suffix in (".db", ".db-journal"):
                continue
            seen.add(path)
            data = path.read_bytes()
            for v in values:
                if any(f in data for f in forms[v]):
                    found[v][_artifact_place(path)] += 1
    return {v: c for v, c in found.items() if c}


def leaks(cases: list[Case], found: dict[str, Counter]) -> dict[Case, Counter]:
    """The cases found anywhere but where they are allowed."""
    out = {}
    for case in cases:
        places = found.get(case.value, Counter())
        places = Counter({p: n for p, n in places.items() if p not in case.allowed})
        if places:
            out[case] = places
    return out


def leak_report(leaked: dict[Case, Counter], total: int) -> str:
    lines = []
    for case, places in leaked.items():
        where = ", ".join(f"{p} x{n}" for p, n in sorted(places.items()))
        known = "known leak" if case.leaks_today else "REGRESSION, was kept out"
        lines.append(f"  {case.name} [{case.value[:24]}] ({known}): {where}")
    return f"{len(lines)} of {total} planted secrets found in the store:\n" + "\n".join(lines)


# --- the tests ----------------------------------------------------------------------------------


def test_no_planted_secret_reaches_the_store(store, client, tmp_path, monkeypatch, template_db):
    assert len({c.value for c in CASES}) == len(CASES) == 29
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NBTRACK_EXPERIMENT", "adversarial")
    monkeypatch.setenv("NBTRACK_CARD", "0")
    monkeypatch.setenv("NBTRACK_LIVE", "0")
    repo = make_repo(tmp_path, DIRTY_FILES, REMOTE_TOKEN)
    cells = [new_code_cell("%load_ext nbtrack")]
    cells += [new_code_cell(c) for c in TRACKED_CELLS]
    cells += [
        new_markdown_cell(f"Connection notes. password: {planted(28)}"),
        new_code_cell(NOTE_CELL),
    ]
    cells += [
        new_code_cell(REGISTER_CELL),
        new_code_cell(PROMOTE_CELL),
        new_code_cell(RAISING_CELL),
    ]
    nb = code_notebook(repo / "adversarial.ipynb", cells)
    tracked = sum(c.source.startswith("%%track") for c in cells)

    run_twice(nb, repo, tmp_path, monkeypatch, template_db, fails="ValueError")

    # The store is not empty: every tracked cell made its run, and the model was promoted.
    runs = client.search_runs([client.get_experiment_by_name("adversarial").experiment_id])
    assert len(runs) >= tracked, f"{len(runs)} runs for {tracked} tracked cells"
    assert sum(r.info.status == "FAILED" for r in runs) == 1
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "1"

    db = Path(store.removeprefix("sqlite:///"))
    dump, dirs = store_paths(db)
    assert all(d.is_relative_to(tmp_path) for d in dirs), dirs
    assert sum(1 for d in dirs for p in d.rglob(record.ARTIFACT_CELL.split("/")[-1])) >= tracked
    leaked = leaks(CASES, where_found([c.value for c in CASES], dump, dirs))
    assert not leaked, leak_report(leaked, len(CASES))


def test_every_artifact_of_a_run_is_redacted(store, client, tmp_path, monkeypatch, template_db):
    """One secret value, planted so that it reaches everything nbtrack writes for a run. Every
    file in the run's artifact folder is searched, not a fixed list: a new artifact written
    without redaction turns this red."""
    secret = planted(99)
    monkeypatch.setenv("MY_DB_PASSWORD", secret)
    monkeypatch.setenv("SOME_SETTING", secret)  # a neutral name holding the same value
    monkeypatch.setenv("NBTRACK_EXPERIMENT", "one")
    monkeypatch.setenv("NBTRACK_CARD", "0")
    monkeypatch.setenv("NBTRACK_LIVE", "0")
    repo = make_repo(tmp_path, {"settings.py": ('value = "{}"\n', secret)}, "x")
    cell = (
        f"%%track --name run-{secret} -t deploy={secret} -p setting={secret}\n"
        "import nbtrack\n"
        f'db_password = "{secret}"\n'
        "value = db_password\n"
        "print(value)\n"
        "nbtrack.log_params(other=value)\n"
        'raise RuntimeError(f"failed with {value}")'
    )
    nb = code_notebook(
        repo / "one.ipynb", [new_code_cell("%load_ext nbtrack"), new_code_cell(cell)]
    )

    run_twice(nb, repo, tmp_path, monkeypatch, template_db, fails="RuntimeError")

    [run] = client.search_runs([client.get_experiment_by_name("one").experiment_id])
    assert run.info.status == "FAILED"
    folder = Path(unquote(urlparse(run.info.artifact_uri).path))
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    expected = {
        record.ARTIFACT_CELL,
        record.ARTIFACT_HISTORY,
        record.ARTIFACT_NOTEBOOK,
        record.ARTIFACT_TRACEBACK,
        record.ARTIFACT_GIT_DIFF,
        record.ARTIFACT_ENVIRONMENT,
    }
    assert expected <= set(files), sorted(files)
    # the planted value did reach them (redacted or not): the places around it are there
    reached = {
        record.ARTIFACT_TRACEBACK: "failed with",
        record.ARTIFACT_NOTEBOOK: "failed with",
        record.ARTIFACT_GIT_DIFF: "+value =",
        record.ARTIFACT_ENVIRONMENT: "SOME_SETTING",
        record.ARTIFACT_CELL: "db_password",
    }
    for name, near in reached.items():
        assert near in files[name].read_text(), (name, near)
    assert {"setting", "other"} <= set(run.data.params) and "deploy" in run.data.tags
    forms = _forms(secret)
    leaked = []
    for name, path in sorted(files.items()):
        data = path.read_bytes()
        at = min((data.find(f) for f in forms if f in data), default=-1)
        if at >= 0:
            leaked.append(f"{name}: ...{data[max(0, at - 40) : at + 40].decode(errors='replace')}")
    fields = {"run name": run.info.run_name or ""}
    fields |= {f"param {k}": v for k, v in run.data.params.items()}
    fields |= {f"tag {k}": v for k, v in run.data.tags.items()}
    fields |= {f"param key {k}": k for k in run.data.params}
    fields |= {f"tag key {k}": k for k in run.data.tags}
    leaked += [name for name, text in fields.items() if secret in text]
    assert leaked == [], f"{secret} found in: {leaked}"
