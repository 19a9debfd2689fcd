"""The params a tracked cell records: which (papermill's parameters, the cell's literal
assignments, ``-p``) and from where (``nbtrack/params.json``), fitted to MLflow's limits (a value
too long goes to ``nbtrack/params/<key>.txt``, never truncated).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from nbtrack import record as R
from nbtrack import store
from nbtrack.capture import notebook as nbcap
from nbtrack.capture import source

if TYPE_CHECKING:
    from nbtrack.tracking.tracker import RunSpec, Source


def asked(
    spec: RunSpec, src: Source, nb: nbcap.NotebookFile | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The params the cell asks for and where each came from ("papermill": the notebook's
    parameters cell or papermill's injected one; "cell": the cell's literal assignments; "flag":
    ``-p``), in increasing precedence."""
    out: dict[str, object] = {}
    sources: dict[str, str] = {}
    if spec.auto_params:
        for code in _papermill_cells(src, nb):
            found = source.literal_params(code)
            out.update(found)
            sources.update(dict.fromkeys(found, "papermill"))
        found = source.literal_params(src.python or src.code)
        out.update(found)
        sources.update(dict.fromkeys(found, "cell"))
    text = {k: v if isinstance(v, str) else source.format_param(v) for k, v in out.items()}
    text.update(spec.params)
    sources.update(dict.fromkeys(spec.params, "flag"))
    return text, sources


def params_json(
    params: Mapping[str, str], sources: Mapping[str, str], overridden: Mapping[str, str]
) -> str:
    """nbtrack/params.json: each param's value and source ("user" when the user's own logging
    replaced what the cell's code said, which is kept as "captured")."""
    out = {}
    for key in sorted(params):
        entry = {"value": params[key], "source": sources.get(key, "user")}
        if key in overridden:
            entry.update(source="user", captured=overridden[key])
        out[key] = entry
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
