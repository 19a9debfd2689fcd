"""Pure tables and diffs: which run was best, and what was different about it.

(Not ``nbtrack/compare.py``: importing a submodule ``nbtrack.compare`` would replace the public
function ``nbtrack.compare`` with the module; ``nbtrack/curvedata.py`` is named so for the same
reason.)

- Tables: sorting (MLflow's ``order_by`` syntax or column names), quick text search, group-by
  with a metric's mean/min/max per group, and the static HTML of the top rows.
- Diffs: ``diff(run_a, run_b, ...)`` reads each run's record (params, metrics, tags and the
  ``nbtrack/cell.py``, ``nbtrack/requirements.txt`` and ``nbtrack/git.diff`` artifacts) through
  ``nbtrack.store`` and keeps only what differs, by section: params, metrics, code, data,
  environment, plus unified diffs of the cell source and of the uncommitted changes.
- Configs: a run's params as a ``%%track`` line or a papermill parameters dict.

No IPython and no widgets here: ``nbtrack.widgets.compare`` presents what this module returns.
Every string that came from a run is HTML-escaped in the HTML built here.
"""

from __future__ import annotations

import difflib
import html
import math
import re
import shlex
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtrack import record as _record
from nbtrack.capture.source import parse_param
from nbtrack.errors import UsageError

TOP_ROWS = 20  # rows in the static table
# Params that describe the environment, the code or the data rather than the configuration.
ENV_PARAM = re.compile(r"^(python|[\w.-]+)_version$")
SYSTEM_PARAMS = ("git_commit", "data_hash", "random_seed")
CELL = "nbtrack/cell.py"
REQUIREMENTS = "nbtrack/requirements.txt"
GIT_DIFF = "nbtrack/git.diff"
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


def papermill_parameters(params: Mapping[str, str]) -> dict[str, Any]:
    """The params as papermill parameters: literals read back as Python values
    (``"0.01"`` -> ``0.01``), anything else kept as a string."""
    out: dict[str, Any] = {}
    for k, v in config_params(params).items():
        out[k] = parse_param(v)
    return out


# -- a run's record, for diffs -----------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a diff looks at for one run."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    datasets: Mapping[str, str]  # dataset name -> digest
    cell: str | None
    requirements: str | None
    git_diff: str | None

    @property
    def config(self) -> dict[str, str]:
        """Params that configure the run (random_seed included: it changes the outcome)."""
        return {
            k: v
            for k, v in self.params.items()
            if k not in ("git_commit", "data_hash") and not ENV_PARAM.match(k)
        }

    @property
    def packages(self) -> dict[str, str]:
        return parse_requirements(self.requirements or "")


def parse_requirements(text: str) -> dict[str, str]:
    """``name==version`` lines -> {normalised name: version} (other lines keep their text)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        key = re.sub(r"[-_.]+", "-", name.strip()).lower()
        out[key] = version.strip() if sep else line
    return out


_snapshots: dict[tuple[str, str], Snapshot] = {}
_snap_lock = threading.Lock()


def snapshot(run_id: str) -> Snapshot:
    """The record of a run, read through nbtrack.store; finished runs are cached (their
    artifacts do not change)."""
    from nbtrack import store

    uri = store.tracking_uri()
    with _snap_lock:
        hit = _snapshots.get((uri, run_id))
    if hit is not None:
        return hit
    store.configure()
    run = store.get_run(run_id)
    info = data = run
    snap = Snapshot(
        run_id=info.run_id,
        name=info.name or info.run_id[:8],
        experiment_id=info.experiment_id,
        status=info.status,
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=dict(data.tags),
        datasets=dict(run.datasets),
        cell=store.artifact_text(run_id, CELL),
        requirements=store.artifact_text(run_id, REQUIREMENTS),
        git_diff=store.artifact_text(run_id, GIT_DIFF),
    )
    if snap.status != "RUNNING":
        with _snap_lock:
            if len(_snapshots) > 512:  # a kernel's worth of diffs; artifacts can be large
                _snapshots.clear()
            _snapshots[(uri, run_id)] = snap
    return snap


# -- the diff ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One key that differs: its value in each run (None: the run does not have it)."""

    key: str
    values: tuple[str | None, ...]

    @property
    def change(self) -> str:
        if len(self.values) == 2:
            a, b = self.values
            return "added" if a is None else "removed" if b is None else "changed"
        return "differs"


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[Row]
    same: dict[str, str]  # identical keys and their common value

    def __bool__(self) -> bool:
        return bool(self.rows)

    def keys(self) -> list[str]:
        return [r.key for r in self.rows]


@dataclass(frozen=True)
class TextDiff:
    """A unified diff of one text between the first run and another."""

    title: str
    against: str  # the other run's name
    diff: str  # "" when identical, or when a run did not record the text
    missing: tuple[str, ...] = ()  # the runs (of the two) that did not record it

    def __bool__(self) -> bool:
        return bool(self.diff)


@dataclass(frozen=True)
class RunsDiff:
    """What differs between runs (the first is the reference of the text diffs).

    ``d["params"]`` is a Section (``.rows``, ``.same``); ``d.texts`` the unified diffs.
    Printed as text; shown as HTML in a notebook."""

    run_ids: tuple[str, ...]
    names: tuple[str, ...]
    sections: list[Section]
    texts: list[TextDiff] = field(default_factory=list)

    def __getitem__(self, title: str) -> Section:
        for s in self.sections:
            if s.title == title:
                return s
        raise KeyError(title)

    @property
    def identical(self) -> bool:
        return not any(self.sections) and not any(self.texts)

    def __repr__(self) -> str:
        return render_text(self)

    def _repr_html_(self) -> str:
        return render_html(self)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)


def _section(title: str, maps: Sequence[Mapping[str, Any]]) -> Section:
    keys = sorted({k for m in maps for k in m})
    rows, same = [], {}
    for k in keys:
        values = tuple(None if k not in m else _fmt(m[k]) for m in maps)
        if len(set(values)) == 1 and values[0] is not None:
            same[k] = values[0]
        else:
            rows.append(Row(k, values))
    return Section(title, rows, same)


def _code(s: Snapshot) -> dict[str, str]:
    t = s.tags
    out = {
        "git commit": _record.commit_of(t, s.params),
        "git branch": t.get("mlflow.source.git.branch"),
        "git dirty": t.get("nbtrack.git.dirty"),
        "notebook": t.get("mlflow.source.name"),
        "notebook sha256": t.get("nbtrack.notebook.sha256"),
        # not the cell's sha256: the cell source diff shows what changed in it
    }
    return {k: v for k, v in out.items() if v}


def _data(s: Snapshot) -> dict[str, str]:
    out = {f"dataset {name}": digest for name, digest in s.datasets.items()}
    if s.params.get("data_hash"):
        out["data_hash"] = s.params["data_hash"]
    return out


def _environment(s: Snapshot, packages: bool) -> dict[str, str]:
    """Python and package versions: every installed distribution (requirements.txt) when all the
    runs compared recorded one, else the ``<lib>_version`` params, which every nbtrack run has."""
    out = {}
    for k, v in s.params.items():
        m = ENV_PARAM.match(k)
        if m and (m.group(1) == "python" or not packages):
            out[m.group(1)] = v
    if packages:
        out.update(s.packages)
    elif s.requirements is not None:
        out["requirements.txt"] = "recorded"
    return out


def unified(a: str | None, b: str | None, name_a: str, name_b: str, path: str) -> str:
    """A unified diff of two texts ("" when equal); a missing text diffs as empty."""
    if (a or "") == (b or ""):
        return ""
    lines = difflib.unified_diff(
        (a or "").splitlines(keepends=True),
        (b or "").splitlines(keepends=True),
        fromfile=f"{name_a}/{path}",
        tofile=f"{name_b}/{path}",
        n=3,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def display_names(snaps: Sequence[Snapshot]) -> list[str]:
    """Run names, with a short id where two runs share a name."""
    counts: dict[str, int] = {}
    for s in snaps:
        counts[s.name] = counts.get(s.name, 0) + 1
    return [s.name if counts[s.name] == 1 else f"{s.name} ({s.run_id[:7]})" for s in snaps]


def diff_snapshots(snaps: Sequence[Snapshot]) -> RunsDiff:
    if len(snaps) < 2:
        raise UsageError("a diff needs at least two runs", "pass two run ids or select two rows")
    names = display_names(snaps)
    packages = all(s.requirements is not None for s in snaps)
    sections = [
        _section("params", [s.config for s in snaps]),
        _section("metrics", [s.metrics for s in snaps]),
        _section("code", [_code(s) for s in snaps]),
        _section("data", [_data(s) for s in snaps]),
        _section("environment", [_environment(s, packages) for s in snaps]),
        _section("status", [{"status": s.status} for s in snaps]),
    ]
    ref = snaps[0]
    texts = []
    for s, name in zip(snaps[1:], names[1:], strict=True):
        texts.append(_text_diff("cell source", ref.cell, s.cell, names[0], name, CELL))
        # No git.diff means a clean work tree (or no repository): diff it as empty.
        texts.append(
            TextDiff(
                "uncommitted changes",
                name,
                unified(ref.git_diff, s.git_diff, names[0], name, GIT_DIFF),
            )
        )
    return RunsDiff(tuple(s.run_id for s in snaps), tuple(names), sections, texts)


def _text_diff(title: str, a: str | None, b: str | None, na: str, nb: str, path: str) -> TextDiff:
    # A run without the artifact (a plain MLflow run) is not a run whose text was deleted.
    missing = tuple(n for n, t in ((na, a), (nb, b)) if t is None)
    if missing:
        return TextDiff(title, nb, "", missing)
    return TextDiff(title, nb, unified(a, b, na, nb, path))


def diff(*run_ids: str) -> RunsDiff:
    """What differs between runs (ids), the first being the reference."""
    ids = list(dict.fromkeys(run_ids))
    return diff_snapshots([snapshot(r) for r in ids])


# -- rendering ---------------------------------------------------------------------------------


def _cell(value: str | None) -> str:
    return "(none)" if value is None else value


def render_text(d: RunsDiff) -> str:
    two = len(d.names) == 2
    lines = [f"nbtrack diff: {' → '.join(d.names) if two else ' | '.join(d.names)}"]
    if d.identical:
        lines.append("  the runs are identical in params, metrics, code, data and environment")
    for s in d.sections:
        if not s.rows:
            continue
        lines.append(f"{s.title} ({len(s.rows)} differ, {len(s.same)} identical)")
        width = min(28, max(len(r.key) for r in s.rows))
        for r in s.rows:
            sep = " → " if two else " | "
            lines.append(f"  {r.key:<{width}}  {sep.join(_cell(v) for v in r.values)}")
    quiet = [s.title for s in d.sections if not s.rows and s.same]
    quiet += sorted({t.title for t in d.texts if not t and not t.missing})
    if quiet and not d.identical:
        lines.append("identical: " + ", ".join(quiet))
    for t in d.texts:
        if t:
            lines.append(f"{t.title} ({d.names[0]} → {t.against}):")
            lines += ["  " + line for line in t.diff.rstrip("\n").splitlines()]
        elif t.missing:
            lines.append(f"{t.title}: not recorded for {', '.join(t.missing)}")
    return "\n".join(lines)


STYLE = (
    "<style>.nbtrack-diff{font:12px/1.45 sans-serif;margin:4px 0}"
    ".nbtrack-diff table{border-collapse:collapse;margin:2px 0 8px}"
    ".nbtrack-diff td,.nbtrack-diff th{padding:1px 8px;"
    "border-bottom:1px solid rgba(127,127,127,.2);text-align:left;vertical-align:top;"
    "max-width:32em;overflow-wrap:anywhere}"
    ".nbtrack-diff h4{margin:6px 0 2px;font-size:12px}"
    ".nbtrack-diff .none{color:#999;font-style:italic}"
    ".nbtrack-diff pre{font-size:11px;margin:2px 0;padding:4px;background:rgba(127,127,127,.07);"
    "overflow-x:auto;max-height:30em}"
    ".nbtrack-diff .add{color:#1b5e20}.nbtrack-diff .del{color:#b71c1c}"
    ".nbtrack-diff .hunk{color:#6a1b9a}.nbtrack-diff summary{cursor:pointer;color:#555}"
    "</style>"
)


def _value_html(v: str | None) -> str:
    return "<span class='none'>(none)</span>" if v is None else html.escape(v)


def _diff_html(text: str) -> str:
    out = []
    for line in text.rstrip("\n").splitlines():
        e = html.escape(line)
        if line.startswith(("+++", "---")):
            out.append(f"<b>{e}</b>")
        elif line.startswith("+"):
            out.append(f"<span class='add'>{e}</span>")
        elif line.startswith("-"):
            out.append(f"<span class='del'>{e}</span>")
        elif line.startswith("@@"):
            out.append(f"<span class='hunk'>{e}</span>")
        else:
            out.append(e)
    return "<pre>" + "\n".join(out) + "</pre>"


def render_html(d: RunsDiff) -> str:
    e = html.escape
    two = len(d.names) == 2
    head = "".join(f"<th>{e(n)}</th>" for n in d.names)
    parts = [
        STYLE,
        "<div class='nbtrack-diff'>",
        f"<b>nbtrack diff</b> · {' → '.join(e(n) for n in d.names)}",
    ]
    if d.identical:
        parts.append(
            "<div>the runs are identical in params, metrics, code, data and environment</div>"
        )
    for s in d.sections:
        if not s.rows:
            continue  # named in the "identical" line below
        parts.append(f"<h4>{e(s.title)}</h4>")
        extra = "<th></th>" if two else ""
        rows = []
        for r in s.rows:
            change = f"<td class='none'>{e(r.change)}</td>" if two else ""
            cells = "".join(f"<td>{_value_html(v)}</td>" for v in r.values)
            rows.append(f"<tr data-key='{e(r.key, quote=True)}'><td>{e(r.key)}</td>{cells}")
            rows[-1] += f"{change}</tr>"
        parts.append(
            f"<table class='nbtrack-diff-{e(s.title)}'><tr><th></th>{head}{extra}</tr>"
            + "".join(rows)
            + "</table>"
        )
        if s.same:
            items = ", ".join(f"{e(k)}={e(v)}" for k, v in s.same.items())
            parts.append(
                f"<details><summary>{len(s.same)} {e(s.title)} identical</summary>"
                f"<div style='color:#555'>{items}</div></details>"
            )
    for t in d.texts:
        if t:
            parts.append(f"<h4>{e(t.title)} ({e(d.names[0])} → {e(t.against)})</h4>")
            parts.append(_diff_html(t.diff))
        elif t.missing:
            parts.append(
                f"<div class='none'>{e(t.title)}: not recorded for {e(', '.join(t.missing))}</div>"
            )
    # Whole sections that agree are named, not listed: their values (package versions, the git
    # commit) say nothing about the difference, and change from one checkout to the next.
    same = [s.title for s in d.sections if not s.rows and s.same]
    same += sorted({t.title for t in d.texts if not t and not t.missing})
    if same and not d.identical:
        parts.append(f"<div class='none'>identical: {e(', '.join(same))}</div>")
    parts.append("</div>")
    return "".join(parts)


def _format_cell(value: Any) -> str:
    import pandas as pd

    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
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
    e = html.escape
    shown = df.head(limit)
    head = "".join(f"<th>{e(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False, name=None):
        body.append("<tr>" + "".join(f"<td>{e(_format_cell(v))}</td>" for v in row) + "</tr>")
    more = len(df) - len(shown)
    note = f" · {more:,} more not shown" if more > 0 else ""
    return (
        "<div class='nbtrack-runs' style='font:12px/1.4 sans-serif;margin:4px 0;overflow-x:auto'>"
        f"<div style='color:#555'>{e(caption)}{e(note)}</div>"
        "<table style='border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def group_html(table, by: str, metric: str) -> str:
    e = html.escape
    rows = []
    for key, runs, mean, lo, hi in table.itertuples(index=False, name=None):
        cells = [e(str(key)), str(int(runs))] + [e(_format_cell(float(v))) for v in (mean, lo, hi)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<div class='nbtrack-groups' style='font:12px/1.4 sans-serif'>"
        "<table style='border-collapse:collapse'><thead><tr>"
        f"<th>{e(by)}</th><th>runs</th><th>mean {e(metric)}</th><th>min</th><th>max</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


__all__ = [
    "RunsDiff",
    "Section",
    "Snapshot",
    "TextDiff",
    "config_params",
    "diff",
    "diff_snapshots",
    "group_html",
    "group_table",
    "numeric",
    "papermill_parameters",
    "parse_order",
    "parse_requirements",
    "search_mask",
    "snapshot",
    "sort_frame",
    "table_html",
    "track_line",
    "unified",
]
