"""The notebook file on disk against the one the run recorded: the re-run never reads the file (it
runs the recorded snapshot, or the kernel's history), and the pre-run check says so, with a short
diff of the code cells, when the two differ; a Check like those of reproduction.checks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from nbtrack.reproduction.report import Check

NOTEBOOK_DIFF_LINES = 60  # of the diff of a notebook file changed since the run


def _short(digest: str | None) -> str:
    return (digest or "?")[:12]


def _code_cells(notebook_text: str | None) -> list[str] | None:
    import json

    try:
        nb = json.loads(notebook_text or "")
    except ValueError:
        return None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return None
    return [
        "".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source") or "")
        for c in cells
        if isinstance(c, dict) and c.get("cell_type") == "code"
    ]


def code_cells_diff(recorded: Sequence[str], now: Sequence[str]) -> tuple[int, str]:
    """How many code cells differ, and a unified diff of them (recorded -> on disk), cut to
    NOTEBOOK_DIFF_LINES lines."""
    import difflib

    changed = sum(
        max(i2 - i1, j2 - j1)
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, recorded, now).get_opcodes()
        if op != "equal"
    )
    if not changed:
        return 0, ""

    def lines(cells: Sequence[str]) -> list[str]:
        out = []
        for i, cell in enumerate(cells, start=1):
            out.append(f"# code cell {i}")
            out += cell.splitlines()
        return out

    diff = list(
        difflib.unified_diff(lines(recorded), lines(now), "recorded", "on disk", n=1, lineterm="")
    )
    if len(diff) > NOTEBOOK_DIFF_LINES:
        more = len(diff) - NOTEBOOK_DIFF_LINES
        diff = [*diff[:NOTEBOOK_DIFF_LINES], f"... ({more} more lines)"]
    return changed, "\n".join(diff)


def check_notebook_file(
    path: str | None, recorded_sha: str | None, snapshot: str | None, rebuilt_from: str
) -> Check | None:
    """The notebook file on disk against the one the run recorded (``nbtrack.notebook.sha256``).
    None when it is the same, gone, or nothing was recorded to compare with: the re-run never
    reads the file, it runs what the record holds, and this says so when the two differ."""
    from nbtrack.capture import notebook as nbcap

    if not path or not recorded_sha or not os.path.isfile(path):
        return None
    now = nbcap.read_notebook(path)
    if now is None or now.sha256 == recorded_sha:
        return None
    uses = (
        "the recorded snapshot"
        if rebuilt_from == "the notebook snapshot"
        else f"what the record holds ({rebuilt_from})"
    )
    head = (
        f"the notebook file changed since the run (sha256 {_short(recorded_sha)} → "
        f"{_short(now.sha256)})"
    )
    then_cells, now_cells = _code_cells(snapshot), _code_cells(now.text)
    if then_cells is None or now_cells is None:
        return Check("notebook", "note", f"{head}: the reproduction uses {uses}, not the file")
    changed, diff = code_cells_diff(then_cells, now_cells)
    if not changed:
        return Check(
            "notebook",
            "ok",
            f"{head}, its code cells did not (outputs or metadata): the reproduction uses {uses}",
        )
    return Check(
        "notebook",
        "note",
        f"{head}: {changed} code cell(s) differ; the reproduction uses {uses}, not the file on "
        "disk (diff: recorded → on disk)",
        diff,
    )


def with_notebook_file(history: Check, file: Check | None) -> Check:
    """One "notebook" check: the kernel's history against the rebuilt notebook, and the file on
    disk against the record; the file's finding replaces an "ok" (it is what the user sees)."""
    if file is None:
        return history
    if history.status == "ok":
        return file
    detail = "\n\n".join(d for d in (history.detail, file.detail) if d)
    return Check(history.name, history.status, f"{history.message}; {file.message}", detail)


__all__ = ["NOTEBOOK_DIFF_LINES", "check_notebook_file", "code_cells_diff", "with_notebook_file"]
