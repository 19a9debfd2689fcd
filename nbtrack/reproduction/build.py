"""Rebuild what a run executed, from its record alone, and lay out the folder it runs in again.

A notebook run is rebuilt from its ``nbtrack/notebook.ipynb`` snapshot when the snapshot holds
the tracked cell; otherwise (the notebook was never saved, or was saved before the cell was
last edited) from ``nbtrack/history.py``, the cells the kernel ran, which always ends with it.
Either way the notebook stops at the tracked cell: what came after cannot have changed the run,
and a later ``nbtrack.reproduce`` call must not run again inside its own reproduction.

A script run (``nbtrack.run()``) is rebuilt from ``nbtrack/cell.py``, which holds the script.

Secrets were redacted before the record was written, so a secret *literal* in a cell comes back
as ``[REDACTED]`` and cannot be restored; a secret the notebook reads from the environment at
run time (``os.environ["API_KEY"]``) still works, because the re-run's kernel inherits the
caller's environment.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack.capture.redact import REDACTED
from nbtrack.capture.source import format_param, literal_params, parse_param

REPRO_TAG = "nbtrack-repro"  # cells added by the rebuild carry this tag
HISTORY_HEADER = re.compile(r"^# In\[\d+\]:\n", re.M)  # nbtrack.capture.notebook.history_script
_REPRODUCE_CALL = re.compile(r"\bnbtrack\.reproduce\s*\(|^\s*!\s*nbtrack\s+reproduce\b", re.M)
_LOAD_EXT = re.compile(r"^\s*%(re)?load_ext\s+nbtrack\b", re.M)
_TRACK_LINE = re.compile(r"^\s*%%track\b")
# Data inputs up to this size (in all) are copied into the scratch folder, so that a re-run that
# writes to its inputs cannot change the originals; bigger ones are linked.
COPY_LIMIT = 512 * 1024 * 1024


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Rebuilt:
    """What will run again, and how it was rebuilt."""

    kind: str  # "notebook" or "script"
    source: str  # "the notebook snapshot", "the kernel history" or "the script"
    name: str  # file name to give it in the scratch folder
    cell_sha256: str  # of the reproduced cell's source as it will run: matches the re-run
    notebook: dict | None = None
    script: str | None = None
    target: int = -1  # index of the reproduced cell in notebook["cells"]
    parameters: dict[str, Any] = field(default_factory=dict)  # papermill parameters
    earlier: list[str] = field(default_factory=list)  # sources run before the reproduced cell
    notes: list[str] = field(default_factory=list)

    @property
    def redacted_cells(self) -> list[int]:
        """Indexes of code cells (or [0] for a script) holding a redacted secret."""
        if self.kind == "script":
            return [0] if REDACTED in (self.script or "") else []
        return [
            i
            for i, c in enumerate(self.notebook["cells"] if self.notebook else [])
            if c.get("cell_type") == "code" and REDACTED in _joined(c.get("source"))
        ]

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if self.kind == "script":
            path.write_text(self.script or "", encoding="utf-8")
        else:
            path.write_text(json.dumps(self.notebook, indent=1) + "\n", encoding="utf-8")
        return path


def _joined(source: object) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def parse_history(text: str) -> list[str]:
    """The cells of ``nbtrack/history.py``, in the order the kernel ran them."""
    parts = HISTORY_HEADER.split(text)
    return [p.rstrip("\n") for p in parts[1:] if p.strip()]


def _code_cell(source: str, tags: Sequence[str] = (REPRO_TAG,)) -> dict:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return dict(cell)


def from_snapshot(
    snapshot: str,
    cell_text: str,
    cell_sha: str,
    params: Mapping[str, str],
    history: Sequence[str] = (),
    determinism: Mapping[str, bool] | None = None,
) -> Rebuilt | None:
    """The saved notebook, up to the tracked cell; None when it does not hold the cell."""
    try:
        nb = json.loads(snapshot)
    except ValueError:
        return None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return None
    target = _find_target(cells, cell_text, cell_sha, history)
    if target is None:
        return None
    nb.get("metadata", {}).pop("widgets", None)  # widget state: megabytes the re-run rebuilds
    rebuilt = Rebuilt(
        kind="notebook",
        source="the notebook snapshot",
        name="notebook.ipynb",
        cell_sha256=sha256(_joined(cells[target]["source"])),
        notebook=nb,
    )
    kept = _clean(cells[: target + 1], rebuilt.notes)
    nb["cells"] = kept
    rebuilt.target = len(kept) - 1
    rebuilt.parameters = injected_parameters(kept[:-1], _joined(kept[-1]["source"]), params)
    _finish(rebuilt, determinism)
    return rebuilt


def from_history(
    history: Sequence[str],
    cell_text: str,
    determinism: Mapping[str, bool] | None = None,
    kernelspec: Mapping[str, str] | None = None,
) -> Rebuilt:
    """A notebook of the cells the kernel ran, in order, ending with the tracked cell.

    The history's last cell is the tracked one, with trailing whitespace trimmed; the cell
    itself comes from ``nbtrack/cell.py``, exact, so the re-run records the same cell hash.
    """
    import nbformat

    nb = dict(nbformat.v4.new_notebook())
    nb["metadata"] = {
        "kernelspec": dict(
            kernelspec or {"name": "python3", "display_name": "Python 3", "language": "python"}
        ),
        "language_info": {"name": "python"},
    }
    earlier = list(history[:-1]) if history else []
    cells = [_code_cell(c, tags=()) for c in earlier] + [_code_cell(cell_text, tags=())]
    rebuilt = Rebuilt(
        kind="notebook",
        source="the kernel history",
        name="notebook.ipynb",
        cell_sha256=sha256(cell_text),
        notebook=nb,
    )
    kept = _clean(cells, rebuilt.notes)
    nb["cells"] = kept
    rebuilt.target = len(kept) - 1
    _finish(rebuilt, determinism)
    return rebuilt


def from_script(script: str, name: str) -> Rebuilt:
    return Rebuilt(
        kind="script",
        source="the script",
        name=Path(name).name if name.endswith(".py") else "script.py",
        cell_sha256=sha256(script),
        script=script,
    )


def _find_target(cells: list, cell_text: str, cell_sha: str, history: Sequence[str]) -> int | None:
    # The snapshot holds sources redacted like cell.py, so the text matches when the hash (of
    # the unredacted cell) cannot.
    matches = [
        i
        for i, c in enumerate(cells)
        if isinstance(c, dict)
        and c.get("cell_type") == "code"
        and (sha256(_joined(c.get("source"))) == cell_sha or _joined(c.get("source")) == cell_text)
    ]
    if not matches:
        return None
    # The same cell twice in a notebook (copied): the copy the kernel reached, counted by how
    # often the history ran that source.
    seen = sum(1 for h in history if h.strip() == cell_text.strip())
    return matches[min(max(seen, 1), len(matches)) - 1]


def _clean(cells: list, notes: list[str]) -> list[dict]:
    """Cells before the last, without outputs and without earlier reproductions; the last
    (the tracked cell) as it is."""
    kept = []
    skipped = 0
    for i, cell in enumerate(cells):
        cell = dict(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
            last = i == len(cells) - 1
            if not last and _REPRODUCE_CALL.search(_joined(cell.get("source"))):
                skipped += 1
                continue
        kept.append(cell)
    if skipped:
        notes.append(f"{skipped} earlier cell(s) calling reproduce were left out of the re-run")
    return kept


def _finish(rebuilt: Rebuilt, determinism: Mapping[str, bool] | None) -> None:
    """Load the extension if nothing before the cell does, and put torch's determinism
    settings back as the original run recorded them, right before the cell."""
    nb = rebuilt.notebook
    assert nb is not None
    cells = nb["cells"]
    code_before = [_joined(c.get("source")) for c in cells[:-1] if c.get("cell_type") == "code"]
    if determinism:
        cells.insert(len(cells) - 1, _code_cell(determinism_source(determinism)))
    needs_ext = _TRACK_LINE.match(_joined(cells[-1].get("source")))
    if needs_ext and not any(_LOAD_EXT.search(src) for src in code_before):
        note = "# nbtrack reproduce: nothing before the tracked cell loaded the extension\n"
        cells.insert(0, _code_cell(note + "%load_ext nbtrack"))
    rebuilt.target = len(cells) - 1
    rebuilt.earlier = code_before


def determinism_source(d: Mapping[str, bool]) -> str:
    lines = [
        "# nbtrack reproduce: torch's determinism settings, as the original run recorded them",
        "import torch",
        "",
        f"torch.use_deterministic_algorithms({bool(d.get('deterministic_algorithms'))})",
        f"torch.backends.cudnn.deterministic = {bool(d.get('cudnn_deterministic'))}",
        f"torch.backends.cudnn.benchmark = {bool(d.get('cudnn_benchmark'))}",
    ]
    return "\n".join(lines) + "\n"


# -- papermill parameters ----------------------------------------------------------------------


def _line_param_keys(cell: str) -> set[str]:
    """Keys given with -p on the cell's %%track line: they label the run, they set no variable."""
    first = cell.lstrip("\n").split("\n", 1)[0]
    if not _TRACK_LINE.match(first):
        return set()
    try:
        argv = shlex.split(first)
    except ValueError:
        return set()
    keys = set()
    for flag, value in itertools.pairwise(argv):
        if flag in ("-p", "--param"):
            keys.add(value.partition("=")[0].strip())
    return keys


def injected_parameters(
    before: Sequence[Mapping], cell: str, params: Mapping[str, str]
) -> dict[str, Any]:
    """The run's params that papermill must inject into the ``parameters`` cell: the knobs of
    that cell whose recorded value differs from the default there, typed like the default.

    Left out: names the tracked cell assigns itself (its own literal wins in the record) and
    ``-p`` keys (a label, not a variable): injecting those would change the cells in between.
    """
    cell_code = _joined(cell)
    source = next(
        (
            _joined(c.get("source"))
            for c in before
            if c.get("cell_type") == "code"
            and "parameters" in ((c.get("metadata") or {}).get("tags") or [])
        ),
        None,
    )
    if source is None:
        return {}
    body = cell_code.split("\n", 1)[1] if _TRACK_LINE.match(cell_code.lstrip("\n")) else cell_code
    own = set(literal_params(body)) | _line_param_keys(cell_code)
    out: dict[str, Any] = {}
    for name, default in literal_params(source).items():
        value = params.get(name)
        if value is None or name in own or value == format_param(default):
            continue
        if isinstance(default, str):
            out[name] = value
            continue
        out[name] = parse_param(value)
    return out


# -- the scratch folder ------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """Where a data input is for the re-run."""

    given: str
    path: str  # the original
    how: str  # "copied", "linked", "absolute" (read in place), "outside" (not placed)


def _ups(given: str) -> int:
    parts = Path(os.path.normpath(given)).parts
    n = 0
    while n < len(parts) and parts[n] == "..":
        n += 1
    return n


def layout(
    root: Path, inputs: Sequence[Mapping[str, Any]], origin: str | None
) -> tuple[Path, list[Placed]]:
    """Make ``root/work/...`` the re-run's working directory, with every relative data input at
    the same relative path as in the original run (copied, or linked when big).

    ``origin``: the original notebook or script, whose folder names the levels a ``../data``
    input climbs (cosmetic: the names are what the original had, where known).
    """
    depth = max([_ups(i["given"]) for i in inputs if _relative(i["given"])] or [0])
    names = list(Path(origin).parent.parts[1:]) if origin else []
    names = names[-depth:] if depth and len(names) >= depth else [f"up{k}" for k in range(depth)]
    workdir = root.joinpath("work", *names)
    workdir.mkdir(parents=True, exist_ok=True)
    budget = COPY_LIMIT
    placed = []
    for item in inputs:
        given, path = str(item["given"]), str(item["path"])
        if not _relative(given):
            placed.append(Placed(given, path, "absolute"))
            continue
        dest = Path(os.path.normpath(workdir / given))
        if not dest.is_relative_to(root / "work") or not os.path.exists(path):
            placed.append(Placed(given, path, "outside"))
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = int(item.get("size") or 0)
        if os.path.lexists(dest):
            how = "copied"  # an input inside another input, already in place
        elif size <= budget:
            if os.path.isdir(path):
                shutil.copytree(path, dest, symlinks=False)
            else:
                shutil.copy2(path, dest)
            budget -= size
            how = "copied"
        else:
            os.symlink(path, dest, target_is_directory=os.path.isdir(path))
            how = "linked"
        placed.append(Placed(given, path, how))
    return workdir, placed


def _relative(given: str) -> bool:
    return not os.path.isabs(os.path.expanduser(given))


__all__ = [
    "COPY_LIMIT",
    "REPRO_TAG",
    "Placed",
    "Rebuilt",
    "determinism_source",
    "from_history",
    "from_script",
    "from_snapshot",
    "injected_parameters",
    "layout",
    "parse_history",
]
