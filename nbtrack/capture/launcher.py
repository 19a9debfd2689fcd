"""Which notebook a kernel runs when nobody told it: papermill, nbconvert, nbclient, nbval.

JupyterLab, Notebook 7 and VS Code tell the kernel its notebook (``capture.notebook``). Headless
launchers tell it nothing, so the kernel asks the processes that launched it: their command lines
name the notebook (``papermill in.ipynb out.ipynb``, ``jupyter nbconvert --execute nb.ipynb``)
or a folder of notebooks (``pytest --nbval notebooks``); a script calling papermill's or
nbclient's API names nothing, and the notebooks in the launcher's and the kernel's working
directories are the candidates. papermill's output notebook, written as execution starts, names
its input (``metadata.papermill.input_path``).

A candidate is chosen only if the cells this kernel ran, in order, are its code cells (papermill's
injected parameters aside): a kernel is started fresh for each notebook, so its history is the
executed prefix of exactly one file. Candidates that tie (copies of a notebook) choose none, and
the reason is recorded; a wrong notebook would be worse than none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nbtrack import logs

_log = logs.get(__name__)

# How far up the process tree a launcher may be: the kernel's parent is the launching Python
# process, or an xdist worker whose parent is pytest.
MAX_ANCESTORS = 4
MAX_FILES = 400  # candidates read at most, so a home directory full of notebooks stays cheap
MAX_BYTES = 50_000_000  # a notebook larger than this is not read to be matched
SCAN_DEPTH = 2  # folders below a working directory searched for notebooks
SKIP_DIRS = {".ipynb_checkpoints", ".git", "node_modules", ".venv", "venv", "site-packages"}
PAPERMILL_INJECTED = "# Parameters"  # first line of the cell papermill injects
NO_MATCH = "none: no notebook the launcher names or has beside it holds the cells this kernel ran"


@dataclass(frozen=True)
class Found:
    path: str | None  # the notebook, or None
    how: str  # how it was found, or why none was (the tag nbtrack.notebook)
    output: str | None = None  # papermill's output notebook, when there is one


def find(history: Sequence[str], kernel_cwd: str | None = None) -> Found:
    """The notebook whose cells this kernel ran (``history``, the current cell last)."""
    # papermill's injected parameters are not in the input notebook: they are no evidence
    cells = [c for c in (_norm(h) for h in history) if c and not c.startswith(PAPERMILL_INJECTED)]
    if not cells:
        return Found(None, "none: the kernel has run no cell yet")
    try:
        launchers = list(_launchers())
    except Exception:  # psutil refused (a sandbox): the working directory is all there is
        _log.debug("cannot read the launching processes", exc_info=True)
        launchers = []
    cwd = kernel_cwd or os.getcwd()
    bases = _bases(launchers, cwd)
    # Candidates, nearest first: what each launcher's command line names (an xdist worker's
    # parent is pytest), then the notebooks beside the launcher. A group whose notebooks do not
    # hold these cells (``pytest tests/`` above a script) gives way to the next.
    groups = [(named, "the launcher's command line") for named in _named(launchers, bases)]
    near = [cwd, *(x for p in launchers[:1] for x in (p.cwd, p.pwd) if x)]
    groups.append((_scan(near), "notebooks beside the launcher"))
    for files, where in groups:
        found = _decide(cells, [b for b in map(_read, files) if b is not None], bases, where)
        if found is not None:
            return found
    return Found(None, NO_MATCH)


def _decide(
    cells: Sequence[str], books: Sequence[_Book], bases: Sequence[Path], where: str
) -> Found | None:
    """The notebook among ``books`` that ran here; Found(None, why) on a tie; None if none."""
    # papermill's output, written when execution started, names its input.
    live = [b for b in books if b.input_path and b.running and _matches(cells, b.cells)]
    inputs = {_resolve_input(b, bases, cells) for b in live}
    if len(inputs) == 1 and None not in inputs:
        [path] = inputs
        return Found(path, "papermill's output notebook names its input", live[0].path)
    matching = [b for b in books if not b.input_path and _matches(cells, b.cells)]
    if len(matching) == 1:
        return Found(matching[0].path, f"its cells match this kernel's ({where})")
    if not matching:
        return None
    names = ", ".join(sorted(b.path for b in matching)[:5])
    return Found(None, f"none: {len(matching)} notebooks hold the cells this kernel ran ({names})")


@dataclass(frozen=True)
class _Process:
    cmdline: tuple[str, ...]
    cwd: str | None
    pwd: str | None  # the shell's PWD it inherited: its working directory when it started


def _launchers() -> Iterator[_Process]:
    import psutil

    for proc in psutil.Process().parents()[:MAX_ANCESTORS]:
        try:
            with proc.oneshot():
                cmdline = tuple(proc.cmdline())
                cwd = proc.cwd()
                pwd = proc.environ().get("PWD")
        except (psutil.Error, OSError):
            continue
        yield _Process(cmdline, cwd, pwd)


def _bases(launchers: Sequence[_Process], cwd: str) -> list[Path]:
    # papermill's --cwd moves the launcher before the kernel starts; its arguments stay relative
    # to where it was started, which its PWD (or its parent's working directory) still says.
    seen: list[Path] = []
    for p in (*(x for proc in launchers for x in (proc.cwd, proc.pwd)), cwd):
        if p and Path(p) not in seen:
            seen.append(Path(p))
    return seen


def _named(launchers: Sequence[_Process], bases: Sequence[Path]) -> Iterator[list[Path]]:
    """For each launcher that names any: the notebooks (and folders of them) it names."""
    for proc in launchers:
        found: list[Path] = []
        for arg in proc.cmdline[1:]:
            # options, and code given with -c (which can be longer than a file name may be)
            if arg.startswith("-") or "\n" in arg or len(arg) > 4096:
                continue
            for base in bases:
                try:
                    p = base / arg
                    if arg.endswith(".ipynb") and p.is_file():
                        found.append(p.resolve())
                        break
                    if not arg.endswith(".ipynb") and p.is_dir() and arg not in (".", "..", "/"):
                        found.extend(_walk(p.resolve(), depth=6))
                        break
                except OSError:  # a name too long, a directory we may not read
                    continue
        if found:
            yield list(dict.fromkeys(found))[:MAX_FILES]


def _scan(dirs: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for d in dict.fromkeys(dirs):
        files.extend(_walk(Path(d), depth=SCAN_DEPTH))
    return list(dict.fromkeys(p.resolve() for p in files))[:MAX_FILES]


def _walk(root: Path, depth: int) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in SKIP_DIRS:
            continue
        try:
            if entry.is_file() and entry.name.endswith(".ipynb"):
                yield Path(entry.path)
            elif depth > 0 and entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path), depth - 1)
        except OSError:
            continue


@dataclass(frozen=True)
class _Book:
    path: str
    cells: tuple[str, ...]  # code cells, normalised
    input_path: str | None  # papermill's metadata: this is an output notebook
    running: bool  # papermill has not finished it


def _read(path: Path) -> _Book | None:
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        nb = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None
    cells = tuple(
        _norm(_joined(c.get("source", "")))
        for c in nb["cells"]
        if isinstance(c, dict) and c.get("cell_type") == "code"
    )
    meta = nb.get("metadata")
    pm = meta.get("papermill") if isinstance(meta, dict) else None
    pm = pm if isinstance(pm, dict) else {}
    input_path = pm.get("input_path") if isinstance(pm.get("input_path"), str) else None
    running = bool(pm.get("start_time")) and not pm.get("end_time")
    return _Book(str(path), tuple(c for c in cells if c), input_path, running)


def _matches(history: Sequence[str], cells: Sequence[str]) -> bool:
    """True if the kernel's cells, in order, are among this notebook's code cells."""
    i = 0
    for ran in history:
        while i < len(cells) and cells[i] != ran:
            i += 1
        if i == len(cells):
            return False
        i += 1
    return True


def _resolve_input(book: _Book, bases: Sequence[Path], cells: Sequence[str]) -> str | None:
    """The input file papermill's metadata names (relative to where papermill started, which
    ``--cwd`` hides), as the first base under which it holds the cells this kernel ran."""
    assert book.input_path is not None
    if "://" in book.input_path:  # papermill also reads s3://, http://: recorded as given
        return book.input_path
    for base in [*bases, Path(book.path).parent]:
        p = base / book.input_path
        if p.is_file() and (found := _read(p)) is not None and _matches(cells, found.cells):
            return str(p.resolve())
    return None


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _joined(source: object) -> str:
    return "".join(source) if isinstance(source, list) else str(source)
