"""The registry panel's static HTML: the models, a model's versions and its audit trail (also
the picture saved notebooks show). Every string shown is escaped."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nbtrack.widgets._html import esc as _esc
from nbtrack.widgets._html import metric
from nbtrack.widgets.registry_panel.source import RegistrySource

AUDIT_ROWS = 20
FONT = "font-size:12px;line-height:1.5"
CELL = "padding:2px 8px;text-align:left;vertical-align:top"
STAGE_COLOURS = {"production": "#2e7d32", "staging": "#1565c0", "archived": "#888"}


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _short(value: str | None, n: int = 10) -> str:
    return (value or "")[:n]


def _metrics_text(info: Any) -> str:
    return ", ".join(f"{k}={metric(v)}" for k, v in info.key_metrics(3))


def _stage_html(info: Any, source: RegistrySource) -> str:
    parts = []
    if info.stage:
        colour = STAGE_COLOURS.get(info.stage, "#555")
        parts.append(f"<b style='color:{colour}'>{_esc(info.stage)}</b>")
    stages = set(source.stage_aliases())
    others = [a for a in info.aliases if a not in stages]
    if others:
        parts.append(" ".join(f"<code style='font-size:11px'>@{_esc(a)}</code>" for a in others))
    if info.legacy_stage not in ("None", "") and info.legacy_stage.lower() != (info.stage or ""):
        parts.append(f"<span style='color:#888'>stage {_esc(info.legacy_stage)}</span>")
    return " ".join(parts) or "<span style='color:#888'>none</span>"


def _table(headers: list[str], rows: list[list[str]], cls: str) -> str:
    """An HTML table; the cells are HTML already (escaped by the caller)."""
    head = "".join(
        f"<th style='{CELL};border-bottom:1px solid #ccc'>{_esc(h)}</th>" for h in headers
    )
    body = "".join(
        "<tr>" + "".join(f"<td style='{CELL}'>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f"<table class='{cls}' style='border-collapse:collapse;{FONT}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def models_table(summaries: list[Any]) -> str:
    if not summaries:
        return f"<div style='{FONT};color:#888'>no registered models yet</div>"
    rows = [
        [
            f"<b>{_esc(m.name)}</b>",
            _esc(m.production or "–"),
            _esc(m.staging or "–"),
            _esc(m.previous or "–"),
            _esc(m.latest or "–"),
            _esc(_when(m.updated)),
        ]
        for m in summaries
    ]
    headers = ["model", "production", "staging", "previous", "latest version", "updated"]
    return _table(headers, rows, "nbtrack-registry-models")


def versions_table(infos: list[Any], source: RegistrySource) -> str:
    rows = [
        [
            f"<b>{_esc(i.version)}</b>",
            _stage_html(i, source),
            _esc(_metrics_text(i)),
            f"<code>{_esc(_short(i.data_hash))}</code>",
            f"<code>{_esc(_short(i.run_id, 12))}</code>"
            + (
                f" <span style='color:#c62828'>{_esc(i.run_status)}</span>"
                if source.refused(i)
                else ""
            ),
            _esc(_when(i.created)),
        ]
        for i in infos
    ]
    headers = ["version", "stage", "key metrics", "data", "run", "created"]
    return _table(headers, rows, "nbtrack-registry-versions")


def audit_table(records: list[dict[str, Any]], limit: int = AUDIT_ROWS) -> str:
    if not records:
        return f"<div style='{FONT};color:#888'>no moves recorded yet</div>"
    shown = list(reversed(records))[:limit]
    rows = [
        [
            _esc((r["when"] or "").replace("T", " ")[:19]),
            _esc(r["who"]),
            _esc(r["action"]),
            _esc(r["stage"] or ""),
            _esc(f"{r['from_version'] or '–'} → {r['to_version'] or '–'}"),
            _esc(r["reason"] or ""),
        ]
        for r in shown
    ]
    note = (
        f"<div style='{FONT};color:#888'>latest {limit} of {len(records)} records</div>"
        if len(records) > limit
        else ""
    )
    headers = ["when (UTC)", "who", "action", "stage", "from → to", "reason"]
    return _table(headers, rows, "nbtrack-registry-audit") + note
