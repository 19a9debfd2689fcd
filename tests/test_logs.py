"""nbtrack's own failures leave a trace: logged at debug, shown on stderr under NBTRACK_DEBUG."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import nbtrack
from nbtrack import logs
log = logs.get("nbtrack.widgets.card")
with logs.failures_logged(log, "drawing the run card"):
    raise RuntimeError("planted failure")
print("went on", callable(nbtrack.log))
"""


def _run(env_debug: str | None):
    import os

    env = {k: v for k, v in os.environ.items() if k != "NBTRACK_DEBUG"}
    if env_debug is not None:
        env["NBTRACK_DEBUG"] = env_debug
    return subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True
    )


def test_a_swallowed_failure_is_shown_with_its_traceback_under_nbtrack_debug():
    out = _run("1")
    assert "went on True" in out.stdout  # the code after the block ran; nbtrack.log is a function
    assert "drawing the run card failed" in out.stderr
    assert "RuntimeError: planted failure" in out.stderr  # the traceback, not only a line


def test_without_nbtrack_debug_nothing_reaches_the_output():
    out = _run(None)
    assert "went on True" in out.stdout
    assert out.stderr == ""


def test_user_errors_share_one_base_class():
    from nbtrack import errors

    for cls in (errors.UsageError, errors.NotFound, errors.ParamConflict, errors.CannotReproduce):
        assert issubclass(cls, errors.UserError) and issubclass(cls, errors.NbtrackError)
    assert not issubclass(errors.StoreError, errors.UserError)
