"""binder/: build the environment the way repo2docker does, then use nbtrack in it.

What repo2docker does with this repository (its python buildpack, chosen because binder/ holds
a runtime.txt saying ``python-3.11`` and a requirements.txt, and nothing that a buildpack ahead of
it would claim):

1. makes a Python 3.11 environment (the kernel's, ``${KERNEL_PYTHON_PREFIX}``) and puts its
   ``bin`` first on PATH;
2. copies the whole repository into ``${REPO_DIR}``, which is ``$HOME`` on mybinder (because
   requirements.txt names a local path, pip runs only after that copy);
3. runs ``${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"``
   from ``${REPO_DIR}``, so pip resolves ``.`` against the repository root, not binder/;
4. runs ``chmod +x binder/postBuild`` and ``./binder/postBuild`` from ``${REPO_DIR}``, as the
   notebook user.

The test does the same in tmp_path, with a venv for the environment, minus ``--no-cache-dir``
(pip may use its cache) and with this machine's pip configuration, whose local index holds the
pinned torch. Not reproduced: the Docker image and the base environment repo2docker installs
first (JupyterLab, the notebook server); the kernel comes from nbtrack's own ipykernel
dependency. Then it asserts what a binder user relies on: nbtrack installed as a package (not
run from the source tree) with pyproject's exact torch pins, and ``%%track`` working in a kernel
of that environment without ``%load_ext nbtrack``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"

# Files that make repo2docker pick another buildpack than the python one (Docker, Julia, Nix, R,
# conda, Pipenv), which would ignore runtime.txt or requirements.txt.
PREEMPTING = (
    "Dockerfile",
    "Project.toml",
    "JuliaProject.toml",
    "REQUIRE",
    "default.nix",
    "install.R",
    "DESCRIPTION",
    "environment.yml",
    "Pipfile",
    "Pipfile.lock",
)

# Variables of this machine or of the test run that a binder container does not have.
FOREIGN_ENV = ("NBTRACK_", "MLFLOW_", "JUPYTER_", "JPY_", "IPYTHON", "PYTHON", "VIRTUAL_ENV")

MARK = "NBTRACK-BINDER "


def runtime_python() -> str:
    """The ``x.y`` that binder/runtime.txt asks for."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-"), f"binder/runtime.txt: {runtime!r}"
    return runtime.removeprefix("python-")


def test_binder_is_built_by_the_python_buildpack():
    assert runtime_python() == "3.11"
    present = [name for name in PREEMPTING if (BINDER / name).exists()]
    assert present == [], f"repo2docker would build binder/ from {present}, not requirements.txt"
    # repo2docker refuses a repository with both binder/ and .binder/.
    assert not (ROOT / ".binder").exists()
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    local = [line for line in lines if line.split("#")[0].strip().startswith(".")]
    assert local == [".[torch,examples,widgets]"]
    post_build = (BINDER / "postBuild").read_text()
    # Without set -e, repo2docker carries on past a failing postBuild and the image ships broken.
    assert post_build.startswith("#!/bin/bash\n") and "set -euo pipefail" in post_build


def repository_files() -> list[str]:
    """What a clone of the repository would hold: tracked files and new, not ignored ones (so
    neither .venv nor build/ nor MLflow stores)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [path for path in out.split("\0") if path and (ROOT / path).is_file()]


def container_env(home: Path, prefix: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env["HOME"] = str(home)
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def reported(stdout: str) -> dict:
    """The JSON line a probe printed after MARK (IPython and the kernel may print other lines)."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    assert len(lines) == 1, stdout
    return json.loads(lines[0].removeprefix(MARK))


# What pip installed, as the environment's python sees it.
INSTALLED = f"""
import json, sys
from importlib import metadata
import nbtrack
print({MARK!r} + json.dumps({{
    "python": "%d.%d" % sys.version_info[:2],
    "nbtrack": nbtrack.__file__,
    # The `torch` extra as pip read it: from the metadata of the wheel built from pyproject.
    "torch_extra": [r for r in metadata.requires("nbtrack") if r.endswith('extra == "torch"')],
    "versions": {{d.name: d.version for d in metadata.distributions()}},
}}))
"""

# Run as `ipython -c`: what a started IPython has, with no %load_ext in sight.
MAGICS = f"""
import json
ip = get_ipython()
print({MARK!r} + json.dumps({{
    "cell": ip.find_cell_magic("track") is not None,
    "line": ip.find_line_magic("track_config") is not None,
    "loaded": "nbtrack" in ip.extension_manager.loaded,
}}))
"""

# A notebook's view: a kernel of the environment (the python3 kernelspec that ipykernel installs,
# as JupyterLab starts it) runs a %%track cell; then MLflow is asked what it recorded.
KERNEL = textwrap.dedent(
    f"""
    import json
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        def run(code):
            out = []
            def hook(msg):
                content = msg["content"]
                if msg["msg_type"] == "stream":
                    out.append(content["text"])
                elif msg["msg_type"] == "error":
                    out.append("\\n".join(content["traceback"]))
            reply = kc.execute_interactive(code, timeout=180, output_hook=hook)
            return reply["content"]["status"], "".join(out)

        cell = run("%%track --experiment binder --seed 7\\nlr = 0.25\\nanswer = 6 * 7\\n")
        query = run(
            "import json, mlflow\\n"
            "runs = mlflow.search_runs(experiment_names=['binder'], output_format='list')\\n"
            "runs = [[r.info.status, r.data.params] for r in runs]\\n"
            "print({MARK!r} + json.dumps({{'runs': runs, 'answer': answer}}))\\n"
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    print({MARK!r} + json.dumps({{"cell": cell, "query": query}}))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_binder_environment_has_nbtrack_loaded_in_every_kernel(tmp_path):
    home = tmp_path / "home"  # ${REPO_DIR} and $HOME, one directory as on mybinder
    prefix = tmp_path / "env"  # ${KERNEL_PYTHON_PREFIX}
    # Both outside the repository, where `import nbtrack` finds only what pip installed.
    probe_dir = tmp_path / "probe"
    notebook_dir = tmp_path / "notebook"
    probe_dir.mkdir()
    notebook_dir.mkdir()

    for path in repository_files():
        (home / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, home / path)

    version = runtime_python()
    base = shutil.which(f"python{version}")
    assert base, f"binder/runtime.txt asks for Python {version}: no python{version} on PATH"
    subprocess.run([base, "-m", "venv", str(prefix)], check=True, capture_output=True)

    env = container_env(home, prefix)
    # pip keeps this machine's HOME: its pip.conf names the local wheel cache and index mirror
    # that stand in for binder's PyPI (torch is there and nowhere else reachable).
    pip_env = {**env, "HOME": os.environ["HOME"]}
    run(
        [str(prefix / "bin" / "pip"), "install", "-r", "binder/requirements.txt"],
        cwd=home,
        env=pip_env,
        timeout=1200,
    )
    post_build = home / "binder" / "postBuild"
    post_build.chmod(post_build.stat().st_mode | stat.S_IXUSR)
    run(["./binder/postBuild"], cwd=home, env=env)

    python = str(prefix / "bin" / "python")
    installed = reported(run([python, "-c", INSTALLED], cwd=probe_dir, env=env))
    assert installed["python"] == version
    # Installed into the environment (pip install ., not -e): neither the copy nor this checkout.
    assert Path(installed["nbtrack"]).is_relative_to(prefix), installed["nbtrack"]
    pins = dict(req.split(";")[0].split("==") for req in installed["torch_extra"])
    assert set(pins) == {"torch", "torchvision"}, installed["torch_extra"]
    # Exact pins, installed as pinned: a range would let binder resolve another torch than the
    # one tested here (and, on this machine, download gigabytes).
    assert {d: installed["versions"].get(d) for d in pins} == pins

    ipython = [str(prefix / "bin" / "ipython"), "--no-banner", "-c", MAGICS]
    # NBTRACK_DISABLE keeps the extension's background warm-up away from any store: this probe
    # is about registration only; the kernel below tracks for real.
    probe_env = {**env, "NBTRACK_DISABLE": "1"}
    magics = reported(run(ipython, cwd=probe_dir, env=probe_env))
    assert magics == {"cell": True, "line": True, "loaded": True}

    # The same IPython with a home that postBuild never touched: no magics. So they came from
    # the profile postBuild wrote, not from something else of this environment.
    bare_env = {**probe_env, "HOME": str(tmp_path / "bare")}
    bare = reported(run(ipython, cwd=probe_dir, env=bare_env))
    assert bare == {"cell": False, "line": False, "loaded": False}

    kernel = reported(run([python, "-c", KERNEL], cwd=notebook_dir, env=env, timeout=600))
    status, output = kernel["cell"]
    assert status == "ok", output
    status, output = kernel["query"]
    assert status == "ok", output
    recorded = reported(output)
    # One finished run whose params are the cell's literal assignment and its seed, and the
    # cell's variables stayed in the kernel's namespace.
    assert len(recorded["runs"]) == 1, kernel  # the cell's output says why, if not
    [[run_status, params]] = recorded["runs"]
    assert run_status == "FINISHED"
    assert params["lr"] == "0.25" and params["random_seed"] == "7"
    assert recorded["answer"] == 42
    # With no tracking URI set, the store is the notebook directory's mlflow.db.
    assert (notebook_dir / "mlflow.db").is_file()
