"""The executed notebook: papermill running it (in runner's child process, or in a grid worker),
and reading it back: which cell failed, with its source and traceback.

Run as ``python -m nbtrack.execution.notebook_run SPEC.json`` by execution.runner. Imports only
the standard library at import time (papermill is imported when a notebook runs).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack import logs

_log = logs.get(__name__)

ERROR_MARKER_TAG = "papermill-error-cell-tag"  # papermill's "An Exception was encountered" cells
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class CellFailure:
    """The cell that stopped an execution: it raised, or it was running at the timeout."""

    index: int  # position among the executed notebook's cells (papermill's markers left out)
    execution_count: int | None
    source: str
    ename: str
    evalue: str
    traceback: str  # plain text, colour codes removed
    timed_out: bool = False

    def __str__(self) -> str:
        where = f"In [{self.execution_count}]" if self.execution_count else f"cell {self.index}"
        what = "timed out" if self.timed_out else f"raised {self.ename}: {self.evalue}"
        return f"{where} {what}"


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- reading an executed notebook --------------------------------------------------------------


def _joined(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def find_failure(output: str | os.PathLike) -> CellFailure | None:
    """The first cell of an executed notebook that failed: an error output, papermill's
    exception mark, or the mark this module leaves on the cell running at a timeout."""
    nb = read_json(Path(output))
    if nb is None:
        return None
    index = 0
    for cell in nb.get("cells") or []:
        if not isinstance(cell, dict):
            continue
        if ERROR_MARKER_TAG in ((cell.get("metadata") or {}).get("tags") or []):
            continue
        if cell.get("cell_type") == "code":
            failure = _cell_failure(cell, index)
            if failure is not None:
                return failure
        index += 1
    return None


def _cell_failure(cell: dict, index: int) -> CellFailure | None:
    meta = (cell.get("metadata") or {}).get("papermill") or {}
    for out in cell.get("outputs") or []:
        if out.get("output_type") != "error":
            continue
        if out.get("ename") == "SystemExit" and str(out.get("evalue", "")) in ("", "0"):
            continue
        tb = "\n".join(_ANSI.sub("", str(line)) for line in out.get("traceback") or [])
        return CellFailure(
            index=index,
            execution_count=cell.get("execution_count"),
            source=_joined(cell.get("source")),
            ename=str(out.get("ename", "")),
            evalue=str(out.get("evalue", "")),
            traceback=tb,
            timed_out=bool(meta.get("nbtrack_timeout")),
        )
    if meta.get("exception") is True:
        source = _joined(cell.get("source"))
        return CellFailure(index, cell.get("execution_count"), source, "", "", "")
    return None


# -- the child ---------------------------------------------------------------------------------


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result: dict[str, Any] = {"ok": False}
    try:
        result = run_papermill(spec)
    finally:
        Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# A kernel that never answered its first request (jupyter_client's words for both ways it
# fails). No cell has run in it, so the notebook can start again in a new kernel: ipykernel 7
# kernels have been seen to hang at start now and then, more often on a busy machine (CI: one
# point of a parallel grid in about one run of two), where a new kernel starts fine.
_KERNEL_NEVER_STARTED = re.compile(r"^Kernel (didn't respond in|died before replying)")
KERNEL_START_ATTEMPTS = 3


def kernel_never_started(error: BaseException) -> bool:
    """Did the execution fail because its kernel never answered (before any cell ran)?"""
    return isinstance(error, RuntimeError) and bool(_KERNEL_NEVER_STARTED.match(str(error)))


def run_papermill(spec: dict, **engine_kwargs: Any) -> dict[str, Any]:
    """Execute ``spec['input']`` into ``spec['output']``; a kernel that never answered is
    replaced (at most ``KERNEL_START_ATTEMPTS`` kernels in all)."""
    # A deadline for the whole execution, kernels that never answered included.
    deadline = time.monotonic() + float(spec["timeout"]) if spec.get("timeout") else None
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        result = _run_papermill_once(spec, deadline, **engine_kwargs)
        if not result.get("kernel_never_started") or attempt == KERNEL_START_ATTEMPTS:
            break
        _log.info(
            "%s: its kernel never answered (%s); starting it in a new kernel",
            spec["input"],
            result["error"],
        )
    result.pop("kernel_never_started", None)
    return result


def _run_papermill_once(spec: dict, deadline: float | None, **engine_kwargs: Any) -> dict[str, Any]:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    kwargs: dict[str, Any] = dict(engine_kwargs)
    if deadline is not None:
        # The deadline as a per-cell limit: each cell may take what is left. nbclient reads 0
        # or less as "no limit", hence at least one second.
        kwargs["timeout_func"] = lambda cell: max(1, math.ceil(deadline - time.monotonic()))
    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec.get("parameters") or None,
            kernel_name=spec.get("kernel_name") or None,
            progress_bar=False,
            log_output=False,
            cwd=spec.get("cwd"),
            **kwargs,
        )
        return {"ok": True}
    except PapermillExecutionError as e:
        return {"ok": False, "error": f"{e.ename}: {e.evalue}"}
    except Exception as e:
        # A timeout, a kernel that died, a kernel that never started: papermill has saved the
        # notebook as far as it got, but the cell that was running carries no mark of it.
        _log.debug(
            "papermill.execute_notebook(spec['input'], spec['output'],... failed", exc_info=True
        )
        timed_out = isinstance(e, TimeoutError) or type(e).__name__ == "CellTimeoutError"
        reason = f"{type(e).__name__}: {_first_line(str(e))}"
        if kernel_never_started(e) and not _started_cells(read_json(Path(spec["output"]))):
            return {"ok": False, "error": reason, "kernel_never_started": True}
        if timed_out:
            reason = f"timed out after {float(spec['timeout']):g} s"
        _mark_running_cell(spec["output"], type(e).__name__, reason, timed_out)
        return {"ok": False, "error": reason, "timed_out": timed_out}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _started_cells(nb: dict | None) -> list[dict]:
    """The code cells papermill started in an executed notebook (None: none could be read)."""
    return [
        c
        for c in (nb or {}).get("cells") or []
        if isinstance(c, dict)
        and c.get("cell_type") == "code"
        and ((c.get("metadata") or {}).get("papermill") or {}).get("start_time")
    ]


def _mark_running_cell(output: str, ename: str, evalue: str, timed_out: bool) -> None:
    """Give the cell that was running (the last one papermill started) an error output."""
    nb = read_json(Path(output))
    started = _started_cells(nb)
    if nb is None or not started:
        return
    cell = started[-1]
    meta = cell.setdefault("metadata", {}).setdefault("papermill", {})
    meta.update(exception=True, status="failed", nbtrack_timeout=timed_out)
    cell.setdefault("outputs", []).append(
        {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [evalue]}
    )
    Path(output).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
