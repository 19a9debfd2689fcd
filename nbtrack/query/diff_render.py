"""A RunsDiff shown: as plain text (its repr) and as HTML (a notebook's display), every string
that came from a run escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtrack import html_text

if TYPE_CHECKING:
    from nbtrack.query.diff import RunsDiff

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
    return "<span class='none'>(none)</span>" if v is None else html_text.escape(v)


def _diff_html(text: str) -> str:
    out = []
    for line in text.rstrip("\n").splitlines():
        e = html_text.escape(line)
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
    e = html_text.escape
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
