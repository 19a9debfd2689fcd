"""The params a tracked cell records: which (papermill's parameters, the cell's literal
assignments, the simple values it reads from the namespace, ``-p``), under which keys (dicts
flattened to dotted keys, at most ``MAX_AUTO`` found per cell) and from where
(``nbtrack/params.json``), fitted to MLflow's limits (a value too long goes to
``nbtrack/params/<key>.txt``, never truncated).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import Counter
from collections.abc import Mapping, Sequence, Set
from typing import TYPE_CHECKING, NamedTuple

from nbtrack import logs, store
from nbtrack import record as R
from nbtrack.capture import environment, namespace, source
from nbtrack.capture import notebook as nbcap
from nbtrack.errors import UsageError
from nbtrack.logs import failures_logged

if TYPE_CHECKING:
    from nbtrack.tracking.tracker import RunSpec, Source

_log = logs.get(__name__)

MAX_KEY = 250  # MLflow's limit on a param's name
MAX_AUTO = 100  # params found per cell (papermill, cell, namespace); more are namespace noise
# The cell's own literal assignments are all params, up to this many: a generated cell of 400,000
# assignments is data, not hyperparameters (and MLflow takes ~100 params a call).
MAX_CELL = 1000
DROPPED = "(dropped)"  # params.json's note on the cap: "(" is never in an MLflow param name
_PRECEDENCE = {"cell": 0, "papermill": 1, "namespace": 2}  # the winner first; then "flag" wins


class Found(NamedTuple):
    """The params a cell asks for: key -> text, key -> source, and the cap's note (or None)."""

    params: dict[str, str]
    sources: dict[str, str]
    dropped: dict[str, object] | None


def asked(spec: RunSpec, src: Source, nb: nbcap.NotebookFile | None) -> Found:
    """The params the cell asks for and where each came from: ``-p`` ("flag") wins over the
    cell's literal assignments ("cell"), which win over papermill's parameters ("papermill"),
    which win over the simple values the cell reads from the namespace ("namespace"), name by
    name. Dicts of the cell and the namespace are flattened (``keys``); papermill's are not (a
    re-run or a grid injects them back by name). At most ``MAX_AUTO`` found keys: the namespace's
    are dropped first (the last read first), the cell's and papermill's are kept."""
    named: dict[str, tuple[object, str]] = {}  # name -> (value, source)
    if spec.auto_params:
        for code in _papermill_cells(src, nb):
            named.update((k, (v, "papermill")) for k, v in source.literal_params(code).items())
        tree = source.parse(src.python or src.code)
        named.update((k, (v, "cell")) for k, v in source.literal_params(tree).items())
        if src.namespace is not None and tree is not None:
            with failures_logged(_log, "reading params from the namespace"):
                reads = [n for n in source.names_read(tree) if n not in named]
                for k, v in namespace.simple_values(reads, src.namespace).items():
                    named[k] = (v, "namespace")
    text: dict[str, str] = {}
    sources: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for key, (name, value, where) in keys(named, set(spec.params) | nbtrack_keys()).items():
        text[key] = value if isinstance(value, str) else source.format_param(value)
        sources[key] = where
        by_name.setdefault(name, []).append(key)
    dropped = _cap(text, sources, by_name)
    text.update(spec.params)
    sources.update(dict.fromkeys(spec.params, "flag"))
    return Found(text, sources, dropped)


def keys(
    named: Mapping[str, tuple[object, str]], taken: Set[str] = frozenset()
) -> dict[str, tuple[str, object, str]]:
    """Param key -> (name, value, source). A flattenable dict of the cell or the namespace gives
    one key per leaf: the leaf's dotted path (``n_estimators``, ``model.depth``) when no other
    found param, flattened leaf or ``taken`` key has it, else the path under the variable's name
    (``params.n_estimators``): a key never stands for two values. A clash left after that (a
    dict key that spells another's full path) keeps the first."""
    leaves: list[tuple[str, tuple[str, ...], object, str]] = []
    for name, (value, where) in named.items():
        if where != "papermill" and namespace.flattenable(value):
            leaves += [(name, path, leaf, where) for path, leaf in namespace.flatten(value)]
        else:
            leaves.append((name, (), value, where))
    short = Counter(".".join(path) if path else name for name, path, _, _ in leaves)
    out: dict[str, tuple[str, object, str]] = {}
    for name, path, value, where in sorted(leaves, key=lambda leaf: _PRECEDENCE[leaf[3]]):
        key = ".".join(path) if path else name
        if path and (short[key] > 1 or key in taken):
            key = f"{name}.{key}"
        if len(key) <= MAX_KEY and key not in out:
            out[key] = (name, value, where)
    return out


def nbtrack_keys() -> set[str]:
    """The params nbtrack logs itself (seed, commit, data, versions): a dict leaf that has one
    of these names takes its variable's name in front."""
    fixed = {R.PARAM_RANDOM_SEED, R.PARAM_GIT_COMMIT, R.PARAM_DATA_HASH, "python_version"}
    return fixed | {f"{prefix}_version" for prefix in environment.ML_LIBRARIES.values()}


def _cap(
    text: dict[str, str], sources: dict[str, str], by_name: Mapping[str, list[str]]
) -> dict[str, object] | None:
    """Keep at most MAX_AUTO found keys, dropping the namespace's names (all of a dict's keys
    at once), the last read first; the cell's and papermill's are all kept. Returns the note
    for params.json, or None when nothing was dropped."""
    over = len(text) - MAX_AUTO
    if over <= 0:
        return None
    names = [n for n, ks in by_name.items() if sources[ks[0]] == "namespace"]
    count = 0
    for name in reversed(names):
        if over <= 0:
            break
        for key in by_name[name]:
            del text[key], sources[key]
        over -= len(by_name[name])
        count += len(by_name[name])
    reason = (
        f"more than {MAX_AUTO} params were found in the cell and the names it reads; "
        f"{count} read from the namespace were left out (the last read first)"
    )
    note: dict[str, object] = {"count": count, "reason": reason}
    if len(text) > MAX_CELL:  # the cell's own: the first MAX_CELL kept, in the cell's order
        extra = list(text)[MAX_CELL:]
        for key in extra:
            del text[key], sources[key]
        note.update(
            count=count + len(extra),
            cell=len(extra),
            reason=f"{reason}; the cell's literals after the first {MAX_CELL} were left out too",
        )
    return note


def params_json(
    params: Mapping[str, str],
    sources: Mapping[str, str],
    overridden: Mapping[str, str],
    dropped: Mapping[str, object] | None = None,
) -> str:
    """nbtrack/params.json: each param's value and source ("user" when the user's own logging
    replaced what the cell's code said, which is kept as "captured"); under "(dropped)", how
    many found params the cap left out, and why."""
    out: dict[str, object] = {}
    for key in sorted(params):
        entry = {"value": params[key], "source": sources.get(key, "user")}
        if key in overridden:
            entry.update(source="user", captured=overridden[key])
        out[key] = entry
    if dropped:
        out[DROPPED] = dict(dropped)
    return json.dumps(out, indent=1) + "\n"


def _papermill_cells(src: Source, nb: nbcap.NotebookFile | None) -> list[str]:
    """The parameters cell (when the notebook has one and it ran here) and papermill's
    injected cell (the last one that ran): a parameterized notebook's knobs become params
    whether it was run by hand or by papermill."""
    cells = []
    if nb is not None and nb.parameters:
        ran = {c.strip() for c in src.earlier}
        if nb.parameters.strip() in ran:
            cells.append(nb.parameters)
    injected = [c for c in src.earlier if source.is_papermill_parameters_cell(c)]
    if injected:
        cells.append(injected[-1])
    return cells


# What MLflow accepts as a param or tag name (mlflow.utils.validation): checked before anything
# is sent, so a bad name is the user's one-sentence mistake, not a store failure mid-run.
_NAME = re.compile(r"[/\w.\- :]+")
MAX_NAME = 250


def check_name(name: object, kind: str = "param") -> str:
    """``name`` if MLflow takes it as a param (or tag) name; else UsageError saying what to do."""
    text = name if isinstance(name, str) else ""
    norm = posixpath.normpath(text) if text else ""
    if (
        not text
        or len(text) > MAX_NAME
        or not _NAME.fullmatch(text)
        or norm != text
        or norm == "."
        or norm.startswith(("..", "/"))
    ):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise UsageError(
            f"{kind} name {shown} is not one MLflow accepts",
            f"use at most {MAX_NAME} letters, digits and _ - . : / space, as a clean relative "
            "path (no '..', no leading or double '/')",
        )
    return text


def fit(params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Values over MLflow's limit go to an artifact; the param points to it (never truncated)."""
    fitted, files = {}, {}
    for key, value in params.items():
        if len(value) > store.MAX_PARAM_VALUE:
            rel = f"{R.ARTIFACT_PARAMS_DIR}/{_safe_name(key)}.txt"
            files[rel] = value
            fitted[key] = f"artifact:{rel}"
        else:
            fitted[key] = value
    return fitted, files


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)[:100]


def user_may_log_params(code: str, earlier: Sequence[str]) -> bool:
    """May code that runs during the cell log params itself? The cell calling a param logger
    (MLflow's fluent or client call, nbtrack.log_params), a function or class defined in an
    earlier cell calling one, or autologging switched on earlier. (A top-level call in an earlier
    cell logged into another run; code in imported modules is not seen.)"""
    if "log_param" in code or "autolog" in code:
        return True
    return any(
        "autolog" in text or ("log_param" in text and ("def " in text or "class " in text))
        for text in earlier
    )
