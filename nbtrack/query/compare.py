"""Pure tables: which run was best, sorted, searched and grouped; a run's params as a config.

(Not ``nbtrack/compare.py``: importing a submodule ``nbtrack.compare`` would replace the public
function ``nbtrack.compare`` with the module; ``nbtrack/curvedata.py`` is named so for the same
reason.)

- Tables: sorting (MLflow's ``order_by`` syntax or column names), quick text search, group-by
  with a metric's mean/min/max per group, and the static HTML of the top rows.
- Diffs: in query.diff.
- Configs: a run's params as a ``%%track`` line or a papermill parameters dict.

No IPython and no widgets here: ``nbtrack.widgets.compare`` presents what this module returns.
Every string that came from a run is HTML-escaped in the HTML built here.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from nbtrack import html_text
from nbtrack import record as _record
from nbtrack.capture.source import parse_param
from nbtrack.errors import UsageError

TOP_ROWS = 20  # rows in the static table
# Params that describe the environment, the code or the data rather than the configuration.
ENV_PARAM = re.compile(r"^(python|[\w.-]+)_version$")
SYSTEM_PARAMS = (_record.PARAM_GIT_COMMIT, _record.PARAM_DATA_HASH, _record.PARAM_RANDOM_SEED)
_ORDER_ALIASES = {
    "start_time": "start_time",
    "created": "start_time",
    "run_name": "name",
    "status": "status",
    "run_id": "run_id",
    "user_id": "user",
    "end_time": "duration",  # close enough to order by: the table has no end time
}


# -- sorting, searching, grouping --------------------------------------------------------------


def parse_order(order_by: str | Sequence[str] | None) -> list[tuple[str, bool]]:
    """``["metrics.val_acc DESC", "params.lr"]`` -> ``[("metrics.val_acc", True), ("params.lr",
    False)]``: MLflow's order_by syntax (``attributes.`` prefixes, ASC/DESC) or column names."""
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    out = []
    for item in items:
        text = item.strip()
        desc = False
        m = re.match(r"^(.*?)\s+(ASC|DESC)$", text, re.IGNORECASE)
        if m:
            text, desc = m.group(1).strip(), m.group(2).upper() == "DESC"
        kind, dot, key = text.partition(".")
        key = key.strip("`\"'")
        if dot and kind in ("metric", "metrics"):
            out.append((f"metrics.{key}", desc))
        elif dot and kind in ("param", "params", "parameter", "parameters"):
            out.append((f"params.{key}", desc))
        elif dot and kind in ("attribute", "attributes", "attr", "run"):
            out.append((_ORDER_ALIASES.get(key, key), desc))
        else:
            out.append((_ORDER_ALIASES.get(text, text), desc))
    return out


def numeric(values: Any):
    """The values as floats when every one that is present reads as a number (params are
    strings in MLflow: "0.01" sorts after "0.1" as text), else None."""
    import pandas as pd

    s = pd.Series(values)
    if s.dtype.kind in "fiub":
        return s.astype(float)
    if s.dtype.kind == "M":
        return None
    present = s.dropna()
    if present.empty:
        return None
    try:
        converted = pd.to_numeric(present, errors="raise")
    except (ValueError, TypeError):
        return None
    if converted.dtype.kind not in "fiub":
        return None
    out = pd.Series(float("nan"), index=s.index)
    out[present.index] = converted.astype(float)
    return out


def sort_frame(df, keys: Sequence[tuple[str, bool]]):
    """Rows sorted by ``keys`` (column, descending), stably; missing values last whatever the
    direction; numeric params by value."""
    if not keys:
        return df
    unknown = [c for c, _ in keys if c not in df.columns]
    if unknown:
        raise UsageError(
            f"cannot sort by {unknown[0]!r}: no such column",
            "use a column of the table, e.g. order_by='metrics.val_acc DESC'",
        )
    import numpy as np

    order = np.arange(len(df))
    # Stable sorts from the last key to the first give a multi-key sort with per-key direction.
    for column, desc in reversed(list(keys)):
        values = df[column].iloc[order]
        nums = numeric(values.reset_index(drop=True))
        if nums is not None:
            v = nums.to_numpy()
            missing = np.isnan(v)
            rank = np.where(missing, 0.0, -v if desc else v)
        else:
            text = values.astype(object)
            missing = text.isna().to_numpy()
            codes = text.where(~missing, "").astype(str).rank(method="dense").to_numpy()
            rank = -codes if desc else codes
        idx = np.lexsort((rank, missing))  # missing last, then by rank; lexsort is stable
        order = order[idx]
    return df.iloc[order]


def search_mask(df, text: str):
    """Rows where any text column contains ``text`` (case-insensitive), as a boolean array."""
    import numpy as np

    text = (text or "").strip()
    mask = np.zeros(len(df), dtype=bool)
    if not text:
        return ~mask
    for column in df.columns:
        col = df[column]
        if col.dtype == object or str(col.dtype) in ("string", "str"):
            mask |= col.astype(str).str.contains(text, case=False, regex=False).to_numpy()
    return mask


def group_table(df, by: str, metric: str):
    """Per value of ``by``: how many runs, and the mean, min and max of ``metric`` over them;
    best mean first. How a user sees that a metric drop came with a data change."""
    import pandas as pd

    for column in (by, metric):
        if column not in df.columns:
            raise UsageError(f"no column {column!r} in the table", "pick one of its columns")
    values = numeric(df[metric])
    if values is None:
        raise UsageError(f"{metric!r} is not numeric", "group a metric or a numeric param")
    keys = df[by].astype(object).where(df[by].notna() & (df[by] != ""), "(none)").astype(str)
    frame = pd.DataFrame({by: keys.to_numpy(), "value": values.to_numpy()})
    out = frame.groupby(by, sort=False)["value"].agg(["count", "mean", "min", "max"])
    out = out.rename(columns={"count": "runs"})
    out["runs"] = frame.groupby(by, sort=False).size()
    return out.sort_values("mean", ascending=False, na_position="last").reset_index()


# -- configs -----------------------------------------------------------------------------------


def config_params(params: Mapping[str, str]) -> dict[str, str]:
    """The params that configure a run (not its environment, code version or data digest)."""
    return {
        k: v
        for k, v in sorted(params.items())
        if k not in SYSTEM_PARAMS and not ENV_PARAM.match(k) and not v.startswith("artifact:")
    }


def track_line(params: Mapping[str, str], experiment: str | None = None) -> str:
    """A ``%%track`` line that runs a cell with these params (and seed) again."""
    parts = ["%%track"]
    if experiment:
        parts += ["--experiment", shlex.quote(experiment)]
    seed = params.get("random_seed")
    if seed is not None and seed.lstrip("-").isdigit():
        parts += ["--seed", seed]
    for k, v in config_params(params).items():
        parts += ["-p", shlex.quote(f"{k}={v}")]
    return " ".join(parts)


def as_papermill_parameters(params: Mapping[str, str]) -> dict[str, Any]:
    """The params as papermill parameters: literals read back as Python values
    (``"0.01"`` -> ``0.01``), anything else kept as a string."""
    out: dict[str, Any] = {}
    for k, v in config_params(params).items():
        out[k] = parse_param(v)
    return out


def format_value(value: Any) -> str:
    """A value in a table cell or a sentence (grid summaries, registry lines): four significant
    digits, NaN and None blank, a timestamp to the second. The one formatter below the widgets
    (which have theirs in widgets._html); diffs keep six digits, to show small differences."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    pd = sys.modules.get("pandas")  # a pandas value comes only with pandas imported
    if pd is not None:
        if isinstance(value, pd.Timestamp):
            return "" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M:%S")
        try:
            if pd.isna(value):
                return ""
        except (TypeError, ValueError):
            pass
    return str(value)


def table_html(df, limit: int = TOP_ROWS, caption: str = "") -> str:
    """The first ``limit`` rows of a table as escaped HTML (what a saved notebook shows)."""
    e = html_text.escape
    shown = df.head(limit)
    head = "".join(f"<th>{e(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False, name=None):
        body.append("<tr>" + "".join(f"<td>{e(format_value(v))}</td>" for v in row) + "</tr>")
    more = len(df) - len(shown)
    note = f" · {more:,} more not shown" if more > 0 else ""
    return (
        "<div class='nbtrack-runs' style='font:12px/1.4 sans-serif;margin:4px 0;overflow-x:auto'>"
        f"<div style='color:#555'>{e(caption)}{e(note)}</div>"
        "<table style='border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def group_html(table, by: str, metric: str) -> str:
    e = html_text.escape
    rows = []
    for key, runs, mean, lo, hi in table.itertuples(index=False, name=None):
        cells = [e(str(key)), str(int(runs))] + [e(format_value(float(v))) for v in (mean, lo, hi)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<div class='nbtrack-groups' style='font:12px/1.4 sans-serif'>"
        "<table style='border-collapse:collapse'><thead><tr>"
        f"<th>{e(by)}</th><th>runs</th><th>mean {e(metric)}</th><th>min</th><th>max</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


__all__ = [
    "as_papermill_parameters",
    "config_params",
    "format_value",
    "group_html",
    "group_table",
    "numeric",
    "parse_order",
    "search_mask",
    "sort_frame",
    "table_html",
    "track_line",
]
