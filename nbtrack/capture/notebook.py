"""Which notebook is this, what does it hold, and what has this kernel run so far."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack import logs
from nbtrack.capture import launcher
from nbtrack.capture.redaction import Redactor
from nbtrack.redacted import Redacted

_log = logs.get(__name__)

PLAIN_SHELL = "none: a plain IPython shell has no notebook (nbtrack/history.py holds its cells)"


def notebook_path(
    user_ns: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The path of the notebook the kernel runs, or None in a plain shell or script.

    In order: jupyter_server's session name (``__session__`` in the namespace, ``JPY_SESSION_NAME``
    in the environment), VS Code's ``__vsc_ipynb_file__``, the path nbtrack's own papermill runners
    pass in ``NBTRACK_RUNNER_NOTEBOOK`` (papermill itself tells the kernel nothing).
    """
    ns = user_ns or {}
    env = os.environ if environ is None else environ
    candidates = (
        ns.get("__session__"),
        env.get("JPY_SESSION_NAME"),
        ns.get("__vsc_ipynb_file__"),
        env.get("NBTRACK_RUNNER_NOTEBOOK"),
    )
    for value in candidates:
        if isinstance(value, str) and value.endswith(".ipynb"):
            return _resolve(value)
    return None


def identify(
    user_ns: Mapping[str, object] | None,
    history: Sequence[str],
    in_kernel: bool,
) -> launcher.Found:
    """The notebook this kernel runs and how that is known (the tag ``nbtrack.notebook``).

    A frontend or nbtrack's runners say it (``notebook_path``); in a kernel nobody told,
    ``capture.launcher`` finds it from the launching processes; a plain IPython shell has none.
    """
    ns = user_ns or {}
    env = os.environ
    for how, value in (
        ("the Jupyter server's session", ns.get("__session__") or env.get("JPY_SESSION_NAME")),
        ("VS Code", ns.get("__vsc_ipynb_file__")),
        ("nbtrack's runner", env.get("NBTRACK_RUNNER_NOTEBOOK")),
    ):
        if isinstance(value, str) and value.endswith(".ipynb"):
            return launcher.Found(_resolve(value), f"told by {how}")
    if not in_kernel:
        return launcher.Found(None, PLAIN_SHELL)
    found = _found.get(os.getpid())
    if found is None:
        try:
            found = launcher.find(history)
        except Exception as e:  # finding the notebook must never stop the run being recorded
            _log.debug("finding the notebook failed", exc_info=True)
            found = launcher.Found(None, f"none: finding it failed ({type(e).__name__})")
        # The launcher does not change in a kernel's life, and a kernel whose cells no notebook
        # holds will not find one later (its history only grows): both are kept. A tie is not,
        # the cells still to come may tell the copies apart.
        if found.path or found.how == launcher.NO_MATCH:
            _found[os.getpid()] = found
    return found


def known_notebook(user_ns: Mapping[str, object] | None = None) -> str | None:
    """The notebook as far as it is known without a search: told, or found by a tracked cell."""
    found = _found.get(os.getpid())
    return notebook_path(user_ns) or (found.path if found else None)


# pid -> the notebook a headless launcher runs, once found (a forked process finds its own)
_found: dict[int, launcher.Found] = {}


def _resolve(path: str) -> str:
    # jupyter_server gives an absolute path; older servers gave one relative to the server root,
    # while the kernel's working directory is the notebook's folder.
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return str(p.resolve())
    if Path(p.name).exists():
        return str(Path(p.name).resolve())
    return str(p.absolute())


# What the logged snapshot is (the tag nbtrack.notebook.snapshot): the saved file byte for byte,
# or the file with secrets redacted and/or saved widget state removed.
EXACT = "exact"
REDACTED = "redacted"
WIDGETS_REMOVED = "widget state removed"


@dataclass(frozen=True)
class NotebookFile:
    path: str
    sha256: str  # of the saved file's bytes, as the user has it on disk
    text: Redacted  # the notebook to log: the file's own text, unless something had to change
    parameters: str | None  # source of the cell tagged "parameters" (papermill's convention)
    snapshot: str = EXACT  # EXACT (``text`` hashes to ``sha256``), else what was changed
    # cell_sha256 of a code cell's source -> the markdown cells right above it, redacted: a
    # tracked cell's explanation, as the notebook's author wrote it (the run's note)
    notes: Mapping[str, str] = field(default_factory=dict)

    def note_for(self, code: str) -> str | None:
        """The markdown right above the saved cell whose source is ``code``; None if the saved
        notebook has no such cell (not saved since the cell was edited) or no markdown there."""
        return self.notes.get(cell_sha256(code)) or None


# The last notebook read, keyed as DVC keys its digests (path, size, mtime, inode) plus the
# secrets redacted: consecutive cells of a notebook that was not saved in between reuse it instead
# of re-parsing and re-redacting a file that can be megabytes of outputs.
_last: dict[tuple, NotebookFile | None] = {}


def read_notebook(path: str, redactor: Redactor | None = None) -> NotebookFile | None:
    """The saved notebook at ``path``, redacted by ``redactor`` (a run's pass, which learns the
    secrets its cells hold); None if it is missing or not a notebook.

    The snapshot leaves out saved widget state (``metadata.widgets``): it is display state, not
    code, and one plotly FigureWidget's state carries plotly.js (about 5 MB).
    """
    redactor = redactor or Redactor()
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_size, st.st_mtime_ns, st.st_ino, frozenset(redactor.known))
    if key in _last:
        return _last[key]
    found = _read(path, redactor)
    _last.clear()
    _last[key] = found
    # What the read learned is known to the next cell's pass: keyed that way, it hits.
    _last[(*key[:-1], frozenset(redactor.known))] = found
    return found


def _read(path: str, redactor: Redactor) -> NotebookFile | None:
    try:
        raw = Path(path).read_bytes()
        nb = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None
    changes = []
    if isinstance(nb.get("metadata"), dict) and nb["metadata"].pop("widgets", None) is not None:
        changes.append(WIDGETS_REMOVED)
    parameters = None
    redacted = False
    notes: dict[str, str] = {}
    above: list[str] = []  # the markdown cells since the last code cell
    cells = [c for c in nb["cells"] if isinstance(c, dict)]
    # Every source first: a secret a later cell assigns is redacted in earlier cells' outputs.
    redactor.learn(*(_joined(c.get("source", "")) for c in cells))
    for cell in cells:
        source = _joined(cell.get("source", ""))
        if parameters is None and "parameters" in (cell.get("metadata", {}).get("tags") or []):
            parameters = source
        clean = redactor.text(source)
        if clean != source:
            cell["source"], redacted = str(clean), True
        if cell.get("cell_type") == "markdown":
            above.append(clean.strip())
        elif cell.get("cell_type") == "code":
            if any(above):
                notes[cell_sha256(source)] = "\n\n".join(a for a in above if a)
            above = []
        for out in cell.get("outputs") or []:
            redacted = _redact_output(out, redactor) or redacted
    if redacted:
        changes.insert(0, REDACTED)
    try:
        # Nothing changed: the file as saved, so the artifact hashes to nbtrack.notebook.sha256.
        text = raw.decode("utf-8") if not changes else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    # Metadata too (papermill's parameters, a kernel's env): any known value, verbatim.
    cleared = redactor.literal(text)
    if cleared != text and not changes:
        changes.insert(0, REDACTED)
    return NotebookFile(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        text=cleared,
        parameters=parameters,
        snapshot=", ".join(changes) or EXACT,
        notes=notes,
    )


def _joined(source: object) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def _redact_output(out: dict, redactor: Redactor) -> bool:
    """Redact an output in place; True if anything in it was a secret."""
    # Outputs can echo secrets too (a printed config, an env dump); text is redacted, binary
    # payloads (images) are left alone.
    changed = False
    fields = [(out, k) for k in ("text", "evalue") if k in out]  # a stream; an error's message
    data = out.get("data")
    if isinstance(data, dict):
        fields += [(data, mime) for mime in list(data) if mime.startswith("text/")]
    for holder, key in fields:
        text = _joined(holder[key])
        clean = redactor.text(text)
        if clean != text:
            holder[key], changed = str(clean), True
    if "traceback" in out and isinstance(out["traceback"], list):
        lines = [str(line) for line in out["traceback"]]
        clean_lines = [str(redactor.text(line)) for line in lines]
        if clean_lines != lines:
            out["traceback"], changed = clean_lines, True
    return changed


def history_text(cells: Iterable[str]) -> str:
    """The cells this kernel ran, in order, as one script (not redacted)."""
    parts = []
    for i, cell in enumerate(cells, 1):
        if cell.strip():
            parts.append(f"# In[{i}]:\n{cell.rstrip()}\n")
    return "\n".join(parts)


def history_script(cells: Iterable[str], redactor: Redactor) -> Redacted:
    """The cells this kernel ran, as one script: unsaved work stays recoverable."""
    return redactor.text(history_text(cells))


def cell_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()
