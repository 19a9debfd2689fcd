"""The compliance report's page: ``render`` turns ``report.facts`` into one standalone HTML
document (inline CSS and SVG; no script, nothing fetched). Every value goes through
``html_text.escape``; a value missing from the record says "not recorded"."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbtrack import record as R
from nbtrack.html_text import escape
from nbtrack.query import lineage_svg

MAX_ROWS = 500  # inference runs listed one per row; the totals count them all
LINKABLE = ("file:", "http:", "https:")  # an artifact location shown as a link (never javascript:)


def utc(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nbtrack_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nbtrack")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "(source tree)"


CSS = """
body{font-family:sans-serif;font-size:14px;color:#222;max-width:1100px;margin:24px auto;
padding:0 16px}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top;font-size:13px}th{background:#f5f5f5}
code,.mono{font-family:monospace;font-size:12px;word-break:break-all}.muted{color:#888}
tr.this td{background:#fff8e6}details{margin:6px 0}
"""


def _cell(value: Any) -> str:
    return f"<td>{escape(value)}</td>"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{escape(classes[i])}'" if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(_cell(v) for v in row) + "</tr>")
    if not body:
        return "<p class='muted'>none recorded</p>"
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pairs(items: Mapping[str, Any]) -> str:
    """A two-column table of names and values; a value missing from the record says so."""
    rows = []
    for k, v in items.items():
        shown = _cell(v) if v not in (None, "") else "<td class='muted'>not recorded</td>"
        rows.append(f"<tr><th>{escape(k)}</th>{shown}</tr>")
    return f"<table>{''.join(rows)}</table>"


def _link(target: str | None) -> str:
    if not target:
        return "<span class='muted'>not recorded</span>"
    if target.startswith("/"):
        target = "file://" + target
    text = f"<code>{escape(target)}</code>"
    return f"<a href='{escape(target)}'>{text}</a>" if target.startswith(LINKABLE) else text


def _section(title: str, body: str) -> str:
    return f"<h2>{escape(title)}</h2>{body}"


def _training_html(t: Mapping[str, Any] | None, info: Any) -> str:
    if t is None:
        return _section(
            "Training run", f"<p>the run {escape(info.run_id)} is no longer in the store</p>"
        )
    run: R.RunView = t["run"]
    tags = run.tags
    record = _pairs(
        {
            "run": f"{run.name} ({run.run_id})",
            "experiment": t["experiment"],
            "status": run.status,
            "started": utc(run.start_time),
            "ended": utc(run.end_time),
            "user": run.user,
        }
    )
    data_rows = [(n, d, "") for n, d in t["datasets"].items()]
    data_rows += [
        (f.get("given") or f.get("path"), f.get("digest"), f"{f.get('kind')}, {f.get('size')} B")
        for f in t["data_files"]
        if isinstance(f, dict)
    ]
    data = _table(("input / source", "digest", "kind, size"), data_rows)
    data += f"<p>data hash: <code>{escape(run.data_hash or info.data_hash or '-')}</code></p>"
    code = _pairs(
        {
            "commit": run.commit or info.git_commit,
            "branch": tags.get(R.TAG_GIT_BRANCH),
            "repository": tags.get(R.TAG_GIT_REPO_URL),
            "uncommitted changes": tags.get(R.TAG_GIT_DIRTY)
            or ("yes (nbtrack/git.diff)" if t["git_diff"] else None),
            "no git state because": tags.get(R.TAG_GIT),
            "notebook": run.notebook or info.notebook,
            "notebook sha256": tags.get(R.TAG_NOTEBOOK_SHA256),
            "cell sha256": tags.get(R.TAG_CELL_SHA256),
        }
    )
    code += f"<p>notebook snapshot: {_link(t['notebook_snapshot'])}</p>"
    if t["run_page"]:
        code += f"<p>the run in MLflow: {_link(t['run_page'])}</p>"
    env = t["environment"]
    summary = {k: env.get(k) for k in ("python_version", "implementation", "platform")}
    summary.update({k: env.get(k) for k in ("machine", "cpu_count", "hostname")})
    summary["gpus"] = json.dumps(env.get("gpus")) if env.get("gpus") else "none"
    summary.update({f"{k}": v for k, v in sorted((env.get("libraries") or {}).items())})
    reqs = t["requirements"]
    environment = _pairs(summary) if env else "<p class='muted'>no environment.json</p>"
    environment += (
        f"<details><summary>{len(reqs)} installed distributions (requirements.txt)</summary>"
        f"<pre class='mono'>{escape(chr(10).join(reqs))}</pre></details>"
        if reqs
        else "<p class='muted'>no requirements.txt</p>"
    )
    params = _table(("param", "value"), sorted(run.params.items()))
    metrics = _table(("metric", "value"), [(k, f"{v:.6g}") for k, v in sorted(run.metrics.items())])
    return (
        _section("Training run", record)
        + _section("Training data", data)
        + _section("Code and notebook", code)
        + _section("Environment", environment)
        + _section("Params", params)
        + _section("Metrics", metrics)
    )


def _reproductions_html(runs: Sequence[R.RunView]) -> str:
    rows = [
        (
            r.tags.get(R.TAG_REPRO_VERDICT, "(no verdict)"),
            r.tags.get(R.TAG_REPRO_ATTEMPT, ""),
            utc(r.start_time),
            r.run_id,
            r.status,
        )
        for r in runs
    ]
    return _section(
        "Reproductions of the training run",
        _table(("verdict", "attempt", "started", "run", "status"), rows),
    )


def _moves_html(moves: Sequence[Mapping[str, Any]], number: str) -> str:
    rows = [
        (
            m.get("when"),
            m.get("who"),
            m.get("action"),
            m.get("stage"),
            f"{m.get('from_version') or '-'} -> {m.get('to_version') or '-'}",
            m.get("reason") or "",
        )
        for m in moves
    ]
    mine = ["this" if number in (m.get("from_version"), m.get("to_version")) else "" for m in moves]
    note = f"<p class='muted'>highlighted: the moves that involve version {escape(number)}</p>"
    table = _table(("when (UTC)", "who", "action", "stage", "from -> to", "why"), rows, mine)
    return _section("Registry moves", table + (note if any(mine) else ""))


def _inference_html(inf: Mapping[str, Any]) -> str:
    runs = inf["runs"]
    count = f"{inf['predictions']:,}" + ("" if inf["all_counted"] else " (some runs still open)")
    head = _pairs(
        {
            "inference runs": len(runs),
            "predictions": count,
            "first": inf["first"],
            "last": inf["last"],
        }
    )
    rows = [
        (
            r.name,
            r.run_id,
            inf["experiments"].get(r.experiment_id, r.experiment_id),
            r.params.get(R.PARAM_INFERENCE_TIMESTAMP) or utc(r.start_time),
            utc(r.end_time),
            r.status,
            r.params.get(R.PARAM_N_PREDICTIONS, ""),
            r.tags.get(R.TAG_INFERENCE_ALIASES, ""),
            r.params.get(R.PARAM_INPUT_DATA_HASH, ""),
        )
        for r in runs[:MAX_ROWS]
    ]
    more = len(runs) - MAX_ROWS
    table = _table(
        (
            "run",
            "id",
            "experiment",
            "started",
            "ended",
            "status",
            "predictions",
            "aliases then",
            "input hash",
        ),
        rows,
    )
    if more > 0:
        table += f"<p class='muted'>and {more:,} more inference runs (counted above)</p>"
    return _section("Inference runs of this version", head + table)


def render(f: Mapping[str, Any]) -> str:
    """The report's page from ``facts``."""
    info = f["version"]
    title = f"{f['name']} version {info.version}"
    version = _pairs(
        {
            "model": f["name"],
            "version": info.version,
            "reported": f["asked"],
            "aliases now": ", ".join(info.aliases) or "none",
            "stage": info.stage,
            "registered": info.created.strftime("%Y-%m-%d %H:%M:%S UTC") if info.created else "",
            "source": info.source,
            "training run": info.run_id,
            "promoted": f"{info.promoted_at or '-'} by {info.promoted_by or '-'}",
            "promotion reason": info.promotion_reason,
            "description": info.description,
        }
    )
    graph = f["graph"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(f'audit report: {title}')}</title><style>{CSS}</style></head><body>",
        f"<h1>Audit report: {escape(title)}</h1>",
        f"<p class='muted'>made {escape(f['made'])} by nbtrack {escape(_nbtrack_version())} from "
        f"<code>{escape(f['store'])}</code></p>",
        _section("Model version", version),
        _training_html(f["training"], info),
        _reproductions_html(f["reproductions"]),
        _moves_html(f["moves"], info.version),
        _inference_html(f["inference"]),
        _section("Lineage", lineage_svg.html(graph) if graph else "<p>not available</p>"),
        "</body></html>",
    ]
    return "\n".join(parts)


__all__ = ["render", "utc"]
