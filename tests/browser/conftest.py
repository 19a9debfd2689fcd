"""Browser test harness: a real JupyterLab server and a real headless Chromium.

What a widget test gets:

- ``jupyter_lab`` (session): one JupyterLab server on 127.0.0.1 with a random token, isolated
  from the user's Jupyter/IPython configuration, serving a temporary root directory.
- ``browser`` (session): one headless Chromium (Debian's ``/usr/bin/chromium``), via playwright.
- ``lab`` (function): a fresh browser context and page wrapped in :class:`Lab`, a small page
  object that writes notebooks, opens them, runs cells and waits for what a person would see.
  Each test gets its own working directory under the server root (kernels of different tests do
  not share ``mlruns/`` etc.), and a screenshot of the final page is saved to
  ``artifacts/screenshots/<test name>.png`` whether the test passed or failed.

Typical use::

    def test_something(lab):
        cells = ["import ipywidgets as w", "w.Button(description='Go')"]
        nb = lab.write_notebook("demo.ipynb", cells)
        lab.open_notebook(nb)
        lab.run_all()
        lab.cell_output(1).get_by_role("button", name="Go").click()

Every test in this directory is marked ``browser`` (deselect with ``-m "not browser"``); they are
skipped only when Chromium is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import nbformat
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"

SERVER_START_TIMEOUT = 60.0
KERNEL_IDLE_TIMEOUT = 60.0
RUN_TIMEOUT = 120.0
VIEWPORT = {"width": 1400, "height": 1000}

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# JupyterLab user settings written into the server's private config dir. They stand in for the
# overrides.json that would otherwise have to go into the venv.
USER_SETTINGS: dict[str, dict[str, Any]] = {
    # "Would you like to get notified about official Jupyter news?" is asked while fetchNews is
    # "none".
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # Attach and render every cell: the default ("contentVisibility") lets the browser skip
    # rendering off-screen cells, so widgets in them may measure a zero-size container.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # The file on disk stays what the test wrote until the test saves (lab.save()).
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # No PyPI queries from the extension manager.
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}
# Plugins switched off outright (page_config.json in the private config dir): the announcements
# plugin asks the news question, fetches news and checks for updates.
DISABLED_PLUGINS = ["@jupyterlab/apputils-extension:announcements"]

# Environment variables not passed to the server (and so not to its kernels): a tracked cell in a
# test must never write to the developer's real tracking server, nor read their Jupyter config.
ENV_DROP_PREFIXES = ("MLFLOW_", "NBTRACK_", "JUPYTER", "IPYTHON")

# Selectors (JupyterLab 4.6).
SEL_KERNEL_STATUS = '#jp-main-statusbar .jp-StatusBar-TextItem[title^="Change kernel"]'
SEL_PANEL = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"
SEL_CELL = ".jp-Notebook-cell"
SEL_CURRENT_TAB = "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current"
SEL_NEWS_TOAST = ".Toastify__toast"

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real JupyterLab in headless Chromium (tests/browser)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"Chromium not found at {CHROMIUM} (install it: apt-get install chromium)"
    )
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.browser)
        if not CHROMIUM.exists() and not os.environ.get("CI"):
            item.add_marker(skip)  # in CI (`make test` installs it) a missing browser fails


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # Keep each phase's report on the item: the `lab` fixture's teardown needs the test's outcome.
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


# --------------------------------------------------------------------------------------------------
# The server


@dataclass
class JupyterLabServer:
    """A running JupyterLab: where it listens, how to authenticate, what it serves."""

    url: str  # "http://127.0.0.1:PORT/" (base URL, with trailing slash)
    port: int
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def lab_url(self, path: str, workspace: str | None = None) -> str:
        """URL opening ``path`` (relative to root_dir) in JupyterLab, in a fresh workspace."""
        workspace = workspace or f"t{uuid.uuid4().hex[:12]}"
        quoted = urllib.request.pathname2url(path.lstrip("/"))
        return f"{self.url}lab/workspaces/{workspace}/tree/{quoted}?reset&token={self.token}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the REST API (``path`` like ``"api/sessions"``); return the decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def shutdown_kernels(self) -> None:
        """Shut down every session and kernel (between tests: kernels must not pile up)."""
        with contextlib.suppress(OSError, ValueError):
            for session in self.api("GET", "api/sessions"):
                with contextlib.suppress(OSError):
                    self.api("DELETE", f"api/sessions/{session['id']}")
            for kernel in self.api("GET", "api/kernels"):
                with contextlib.suppress(OSError):
                    self.api("DELETE", f"api/kernels/{kernel['id']}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no server log>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_private_config(base: Path) -> dict[str, str]:
    """Create private Jupyter/IPython dirs under ``base``; return the env pointing at them."""
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "workspaces")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    settings_dir = dirs["config"] / "lab" / "user-settings"
    for plugin, values in USER_SETTINGS.items():
        target = settings_dir / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2))
    labconfig = dirs["config"] / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": dict.fromkeys(DISABLED_PLUGINS, True)}, indent=2)
    )
    # An explicit kernelspec for this interpreter (the server runs with ensure_native_kernel off),
    # so notebooks always run in the venv under test, whatever kernelspecs the machine has.
    kernel_dir = dirs["data"] / "kernels" / KERNELSPEC["name"]
    kernel_dir.mkdir(parents=True, exist_ok=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": KERNELSPEC["display_name"],
                "language": KERNELSPEC["language"],
                "metadata": {"debugger": True},
            },
            indent=2,
        )
    )
    # The venv's share/jupyter (labextensions of ipywidgets, plotly, anywidget) stays on the data
    # path: jupyter_core always adds sys.prefix/share/jupyter after JUPYTER_DATA_DIR.
    return {
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "IPYTHONDIR": str(dirs["ipython"]),
    }


def _server_env(private: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_DROP_PREFIXES)}
    env.update(private)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silence the debugger's frozen-modules warning
    return env


def _stop_process_group(proc: subprocess.Popen[bytes], server: JupyterLabServer | None) -> None:
    """Stop the server we started: politely, then SIGTERM, then SIGKILL to its own process group."""
    if server is not None and proc.poll() is None:
        with contextlib.suppress(OSError):
            server.api("POST", "api/shutdown", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # Kernels run in the server's process group (start_new_session below); kill any left over.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _start_server(base: Path, attempts: int = 3) -> JupyterLabServer:
    private = _write_private_config(base / "jupyter")
    root_dir = base / "root"
    root_dir.mkdir(parents=True, exist_ok=True)
    env = _server_env(private)
    last_error = ""
    for attempt in range(attempts):
        port, token = _free_port(), secrets.token_hex(24)
        log_path = base / f"jupyter_lab-{attempt}.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.allow_root=True",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root_dir}",
            "--ServerApp.open_browser=False",
            "--KernelSpecManager.ensure_native_kernel=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # window.jupyterapp: lets the harness read the notebook model (output types, sources)
            # and run commands; everything asserted still comes from the DOM.
            "--LabApp.expose_app_in_browser=True",
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = JupyterLabServer(
            url=f"http://127.0.0.1:{port}/",
            port=port,
            token=token,
            root_dir=root_dir,
            log_path=log_path,
            process=proc,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                server.api("GET", "api/status", timeout=2)
                return server
            except (OSError, ValueError):
                time.sleep(0.25)
        exited = proc.poll()
        _stop_process_group(proc, None)
        what = "did not answer" if exited is None else f"exited with {exited}"
        last_error = (
            f"JupyterLab {what} on port {port} (attempt {attempt + 1}/{attempts}); "
            f"log {log_path}:\n{server.log_tail()}"
        )
        if exited is None:
            break  # it started but hangs: retrying on another port will not help
    raise RuntimeError(last_error)


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Chromium not found at {CHROMIUM} (install it: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)  # `make test` installs it: CI must not pass by skipping
    pytest.skip(message)


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLabServer]:
    """A JupyterLab server for the whole session (URL, token, root_dir, api())."""
    _need_chromium()
    server = _start_server(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield server
    finally:
        _stop_process_group(server.process, server)


# --------------------------------------------------------------------------------------------------
# The browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium (playwright ``Browser``) for the whole session."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() uses a fresh temporary profile (user-data-dir), deleted on close.
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


# --------------------------------------------------------------------------------------------------
# The page object


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:150] or "test"


# Reads the state of the current notebook in one round trip: the prompts from the DOM (what a
# person sees) and, from the model, each cell's type, source (empty cells are never executed) and
# error outputs (the DOM renders errors and stderr alike).
_STATE_JS = """
(panel) => {
  const app = window.jupyterapp;
  let widgets = null;
  if (app && app.shell) {
    for (const w of app.shell.widgets('main')) {
      if (w.node === panel && w.content && w.content.widgets) { widgets = w.content.widgets; }
    }
  }
  const cells = Array.from(panel.querySelectorAll('.jp-Notebook-cell'));
  return cells.map((node, i) => {
    const prompt = node.querySelector('.jp-InputArea-prompt');
    const model = widgets && widgets[i] ? widgets[i].model : null;
    const outputs = model && model.outputs ? model.outputs.toJSON() : [];
    return {
      type: model ? model.type : (node.classList.contains('jp-CodeCell') ? 'code' : 'other'),
      prompt: prompt ? prompt.textContent.trim() : '',
      source: model ? model.sharedModel.getSource() : null,
      errors: outputs.filter(o => o.output_type === 'error')
                     .map(o => `${o.ename}: ${o.evalue}`),
    };
  });
}
"""


class Lab:
    """Page object for one test: a browser page on the session's JupyterLab."""

    def __init__(self, page: Page, server: JupyterLabServer, workdir: Path, name: str) -> None:
        self.page = page
        self.server = server
        self.workdir = workdir  # this test's directory, under server.root_dir
        self.name = name  # this test's name, used for screenshots
        self.console: list[str] = []  # browser console errors/warnings and page errors
        self._pending: dict[str, Any] | None = None  # the run started by run_all/run_cell
        page.on(
            "console",
            lambda msg: (
                self.console.append(f"console.{msg.type}: {msg.text}")
                if msg.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        # The news question is switched off by settings; should it show anyway, playwright answers
        # "No" before the next action or assertion that it would get in the way of.
        page.add_locator_handler(
            page.locator(SEL_NEWS_TOAST).filter(has_text="official Jupyter news"),
            lambda toast: toast.get_by_role("button", name="No", exact=True).click(),
        )

    # -- notebooks on disk -------------------------------------------------------------------------

    def write_notebook(self, name: str, cells: Sequence[str | nbformat.NotebookNode]) -> str:
        """Write a notebook into this test's directory; return its path relative to the server root.

        ``cells``: strings become code cells; nbformat cells (e.g.
        ``nbformat.v4.new_markdown_cell(...)``) are used as they are.
        """
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = dict(KERNELSPEC)
        notebook.metadata["language_info"] = {"name": "python"}
        notebook.cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
        path = self.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
        return path.relative_to(self.server.root_dir).as_posix()

    # -- locators ----------------------------------------------------------------------------------

    @property
    def notebook(self) -> Locator:
        """Locator of the notebook panel shown in the main area."""
        return self.page.locator(SEL_PANEL)

    @property
    def cells(self) -> Locator:
        """Locator of all cells (code, markdown, raw) of the current notebook, in notebook order."""
        return self.notebook.locator(SEL_CELL)

    def cell(self, index: int) -> Locator:
        """Locator of cell ``index`` (the index in the notebook file, markdown cells included)."""
        return self.cells.nth(index)

    def cell_output(self, index: int) -> Locator:
        """Locator of the output area of cell ``index`` (widgets, plots, text render in it)."""
        return self.cell(index).locator(".jp-Cell-outputArea")

    @property
    def kernel_status_item(self) -> Locator:
        """The status bar item reading e.g. "Python 3 (ipykernel) | Idle"."""
        return self.page.locator(SEL_KERNEL_STATUS)

    # -- state -------------------------------------------------------------------------------------

    def kernel_status(self) -> str:
        """Kernel status as the status bar shows it ("Idle", "Busy", "Initializing", ...)."""
        items = self.kernel_status_item
        if items.count() == 0:
            return ""
        return items.first.inner_text().rsplit("|", 1)[-1].strip()

    def prompts(self) -> list[str]:
        """Input prompts as shown: "[3]:", "[*]:", "[ ]:" for code cells, "" for others."""
        return [c["prompt"] for c in self._state()]

    def execution_count(self, index: int) -> int | None:
        """The cell's execution count as shown in its prompt (None for "[ ]" and "[*]")."""
        match = re.fullmatch(r"\[(\d+)\]:", self._state()[index]["prompt"])
        return int(match.group(1)) if match else None

    def cell_errors(self) -> list[tuple[int, str]]:
        """(cell index, "Ename: evalue") for every error output in the notebook."""
        return [(i, e) for i, c in enumerate(self._state()) for e in c["errors"]]

    def _state(self) -> list[dict[str, Any]]:
        return self.notebook.evaluate(_STATE_JS)

    # -- waiting -----------------------------------------------------------------------------------

    def wait_until(
        self,
        condition: Callable[[], T],
        *,
        timeout: float = 30.0,
        message: str = "condition",
        interval: float = 0.1,
    ) -> T:
        """Poll ``condition`` until it returns something truthy, and return that; fail after
        ``timeout`` seconds with a screenshot.

        For conditions on the page that playwright's ``expect`` does not cover, e.g.
        ``lab.wait_until(lambda: points() > 5, message="curve grows")``.
        """
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            try:
                result = condition()
                if result:
                    return result
                last_exc = None
            except Exception as exc:  # the page may be mid-update; keep polling, report at the end
                last_exc = exc
            if time.monotonic() >= deadline:
                self.fail(f"timed out after {timeout:.0f}s waiting for {message}", cause=last_exc)
            time.sleep(interval)

    def wait_kernel_idle(self, timeout: float = KERNEL_IDLE_TIMEOUT) -> None:
        """Wait until the status bar reads "<kernel> | Idle".

        Not the toolbar's indicator: it says idle before the kernel is connected.
        """
        self.wait_until(
            lambda: self.kernel_status() == "Idle",
            timeout=timeout,
            message="the kernel status in the status bar to read Idle",
        )

    def fail(self, message: str, cause: BaseException | None = None) -> None:
        """Fail the test with ``message``, a screenshot and what the page says about its state."""
        shot = self.screenshot("failure")
        details = [message, f"screenshot: {shot}"]
        with contextlib.suppress(Exception):
            details.append(f"kernel status: {self.kernel_status()!r}; prompts: {self.prompts()}")
        if cause is not None:
            details.append(f"last error while polling: {cause!r}")
        if self.console:
            details.append("browser console (last 10):\n  " + "\n  ".join(self.console[-10:]))
        raise AssertionError("\n".join(details)) from cause

    # -- actions -----------------------------------------------------------------------------------

    def open_notebook(
        self, path: str, *, wait_kernel: bool = True, timeout: float = KERNEL_IDLE_TIMEOUT
    ) -> Lab:
        """Open ``path`` (relative to the server root, as write_notebook returns it) in a fresh
        workspace; by default wait until its kernel is idle."""
        self._pending = None
        self.page.goto(self.server.lab_url(path), wait_until="domcontentloaded")
        name = path.rsplit("/", 1)[-1]
        self.wait_until(
            lambda: self.cells.count() > 0,
            timeout=timeout,
            message=f"notebook {path} to open",
        )
        self.wait_until(
            lambda: name in (self.page.locator(SEL_CURRENT_TAB).first.inner_text()),
            timeout=timeout,
            message=f"the tab of {name} to be current",
        )
        if wait_kernel:
            self.wait_kernel_idle(timeout)
        return self

    def run_all(
        self, *, wait: bool = True, timeout: float = RUN_TIMEOUT, allow_errors: bool = False
    ) -> None:
        """Run > Run All Cells. With ``wait=False`` return once started (then see wait_for_run)."""
        self.wait_kernel_idle()
        state = self._state()
        self._pending = {
            "cells": [
                i
                for i, c in enumerate(state)
                if c["type"] == "code" and (c["source"] or "").strip()
            ],
            "before": [c["prompt"] for c in state],
            "seen_busy": False,
            "what": "Run All Cells",
        }
        self.page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
        self.page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
        if wait:
            self.wait_for_run(timeout=timeout, allow_errors=allow_errors)

    def run_cell(
        self,
        index: int,
        *,
        wait: bool = True,
        timeout: float = RUN_TIMEOUT,
        allow_errors: bool = False,
    ) -> None:
        """Select cell ``index`` and press Ctrl+Enter (run, stay on the cell)."""
        self.wait_kernel_idle()
        state = self._state()
        if state[index]["type"] != "code":
            raise ValueError(f"cell {index} is a {state[index]['type']} cell, not a code cell")
        self._pending = {
            "cells": [index] if (state[index]["source"] or "").strip() else [],
            "before": [c["prompt"] for c in state],
            "seen_busy": False,
            "what": f"cell {index}",
        }
        cell = self.cell(index)
        cell.locator(".jp-InputArea-prompt").first.click()  # selects the cell, command mode
        self.wait_until(
            lambda: "jp-mod-active" in (cell.get_attribute("class") or ""),
            timeout=10,
            message=f"cell {index} to become the active cell",
        )
        self.page.keyboard.press("Control+Enter")
        if wait:
            self.wait_for_run(timeout=timeout, allow_errors=allow_errors)

    def wait_for_run(self, *, timeout: float = RUN_TIMEOUT, allow_errors: bool = False) -> None:
        """Wait for the last run_all/run_cell to finish: no "[*]" prompt left, the run's first cell
        shows a new count, and the status bar reads Idle. Fails on error outputs unless allowed."""
        pending = self._pending
        if pending is None:
            raise RuntimeError("wait_for_run() without a preceding run_all()/run_cell()")
        cells = pending["cells"]

        def finished() -> bool:
            prompts = [c["prompt"] for c in self._state()]
            running = any(p == "[*]:" for p in prompts)
            pending["seen_busy"] |= running
            if running or self.kernel_status() != "Idle":
                return False
            # All cells of a run are queued at once, so once its first cell shows a new count and
            # nothing is queued any more, the whole run is over (cells after an error are aborted).
            return (
                not cells
                or pending["seen_busy"]
                or prompts[cells[0]] != pending["before"][cells[0]]
            )

        self.wait_until(finished, timeout=timeout, message=f"{pending['what']} to finish running")
        self._pending = None
        if not allow_errors:
            errors = [(i, e) for i, e in self.cell_errors() if i in cells]
            if errors:
                self.fail(
                    f"{pending['what']} raised: "
                    + "; ".join(f"cell {i}: {e}" for i, e in errors)
                    + " (pass allow_errors=True if expected)"
                )

    def is_running(self) -> bool:
        """True while some cell shows "[*]"."""
        return any(c["prompt"] == "[*]:" for c in self._state())

    def command(self, command_id: str, args: dict[str, Any] | None = None) -> Any:
        """Execute a JupyterLab command (e.g. "notebook:interrupt-kernel") through the app."""
        return self.page.evaluate(
            "([id, args]) => window.jupyterapp.commands.execute(id, args)", [command_id, args or {}]
        )

    def interrupt_kernel(self) -> None:
        self.command("notebook:interrupt-kernel")

    def save(self) -> None:
        """Save the current notebook and wait until its tab no longer shows unsaved changes."""
        self.command("docmanager:save")
        self.wait_until(
            lambda: self.page.locator(f"{SEL_CURRENT_TAB}.jp-mod-dirty").count() == 0,
            timeout=30,
            message="the notebook to be saved",
        )

    def screenshot(self, name: str | None = None) -> Path:
        """Save a screenshot as artifacts/screenshots/<test name>[--<name>].png; return its path."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / (f"{self.name}--{_slug(name)}.png" if name else f"{self.name}.png")
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, jupyter_lab: JupyterLabServer, browser: Browser
) -> Iterator[Lab]:
    """A fresh browser context on the session's JupyterLab, wrapped in :class:`Lab`."""
    name = _slug(request.node.name)
    workdir = jupyter_lab.root_dir / name
    if workdir.exists():  # a rerun in the same session
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    lab_page = Lab(page, jupyter_lab, workdir, name)
    try:
        yield lab_page
    finally:
        try:
            shot = lab_page.screenshot()
            report = getattr(request.node, "_report_call", None)
            if report is None or report.failed:
                print(f"screenshot: {shot}")
                if lab_page.console:
                    print("browser console:\n  " + "\n  ".join(lab_page.console[-30:]))
        finally:
            context.close()
            jupyter_lab.shutdown_kernels()
