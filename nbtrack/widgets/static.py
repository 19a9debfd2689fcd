"""The static picture of learning curves: HTML with one inline SVG per metric family.

It is what saved notebooks, nbconvert, papermill outputs and GitHub show where the widget cannot
run: no script, no network, no external resource. Every string that comes from a user (run names,
metric keys) is HTML-escaped. Pure Python: it needs none of the widgets extra.
"""

from __future__ import annotations

import math
import time

import numpy as np

from nbtrack.query.curves import Curves, Series
from nbtrack.query.sampling import ema, lttb
from nbtrack.query.styles import Style, styles
from nbtrack.widgets._html import esc
from nbtrack.widgets._html import number as _fmt

WIDTH, HEIGHT = 440, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 26, 34
POINTS = 600  # per series: a couple of points per pixel column is all an SVG needs
SVG_DASH = {"solid": "", "dash": "6 3", "dot": "2 3", "dashdot": "8 3 2 3"}
FONT = "font-family:sans-serif;font-size:11px"


def render(data: Curves, *, smoothing: float = 0.0, log_y: bool = False) -> str:
    """HTML of the curves of ``data`` (as the widget shows them: same colours, smoothing, scale)."""
    e = esc
    if not data.series:
        return (
            "<div class='nbtrack-curves' style='font-size:12px;color:#666'>"
            "nbtrack: no metrics to draw</div>"
        )
    drawn = list(zip(data.series, styles(data), strict=True))
    panels = [
        _panel(family, [(s, st) for s, st in drawn if s.family == family], data, smoothing, log_y)
        for family in data.families()
    ]
    legend = [_swatch(st.colour, st.dash, st.legend) for _, st in drawn if st.first]
    if len(data.runs()) > 1:  # colours are runs; say what the line styles mean
        roles = {s.role or "train": st.dash for s, st in drawn}
        if len(set(roles.values())) > 1:
            legend.append("<br><span style='color:#888;margin-right:.6em'>line style:</span>")
            legend += [_swatch("#888", dash, role) for role, dash in sorted(roles.items())]
    total = sum(s.total for s in data.series)
    shown = sum(min(len(s.x), POINTS) for s in data.series)
    runs = data.runs()
    note = f"run {runs[0].name} · " if len(runs) == 1 else ""
    note += f"{total:,} points" + (f", {shown:,} drawn (LTTB)" if shown < total else "")
    if smoothing:
        note += f", smoothing {smoothing:g}"
    return (
        f"<div class='nbtrack-curves' style='{FONT};line-height:1.6;margin:4px 0'>"
        "<div style='display:flex;flex-wrap:wrap;gap:6px'>" + "".join(panels) + "</div>"
        "<div>" + "".join(legend) + "</div>"
        f"<div style='color:#888'>nbtrack learning curves · {e(note)} · static picture</div>"
        "</div>"
    )


def _swatch(colour: str, dash: str, label: str) -> str:
    return (
        "<span style='margin-right:1.2em;white-space:nowrap'>"
        f"<svg width='22' height='8'><line x1='1' y1='4' x2='21' y2='4' stroke='{colour}' "
        f"stroke-width='2' stroke-dasharray='{SVG_DASH[dash]}'/></svg> {esc(label)}</span>"
    )


def _panel(
    family: str, series: list[tuple[Series, Style]], data: Curves, smoothing: float, log_y: bool
) -> str:
    e = esc
    lines = []
    for s, st in series:
        x, y = s.x, ema(s.y, smoothing) if smoothing else s.y
        if log_y:
            keep = y > 0
            x, y = x[keep], np.log10(y[keep])
        if len(x) > POINTS:
            idx = lttb(x, y, POINTS)
            x, y = x[idx], y[idx]
        lines.append((s, st, x, y))
    xs = [v for _, _, x, _ in lines for v in (x.min(), x.max()) if len(x)]
    ys = [v for _, _, _, y in lines for v in (y.min(), y.max()) if len(y)]
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' style='max-width:100%;{FONT}'>",
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' "
        f"height='{HEIGHT - TOP - BOTTOM}' fill='none' stroke='#ccc'/>",
        f"<text x='{LEFT}' y='{TOP - 8}' font-weight='bold'>{e(family)}"
        + (" (log)" if log_y else "")
        + "</text>",
    ]
    if not xs or not ys:
        parts.append(f"<text x='{LEFT + 8}' y='{TOP + 20}' fill='#888'>no positive values</text>")
        return "".join(parts) + "</svg>"
    x0, x1 = _span(min(xs), max(xs))
    y0, y1 = _span(min(ys), max(ys))
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(v):
        return LEFT + (v - x0) / (x1 - x0) * pw

    def py(v):
        return TOP + ph - (v - y0) / (y1 - y0) * ph

    for t in _log_ticks(y0, y1) if log_y else _ticks(y0, y1):
        yy = py(t)
        label = _fmt(10**t) if log_y else _fmt(t)
        parts.append(
            f"<line x1='{LEFT}' x2='{LEFT + pw}' y1='{yy:.1f}' y2='{yy:.1f}' stroke='#eee'/>"
            f"<text x='{LEFT - 4}' y='{yy + 3:.1f}' text-anchor='end' fill='#555'>{e(label)}</text>"
        )
    for t in _ticks(x0, x1):
        xx = px(t)
        label = _time(t) if data.x == "timestamp" else _fmt(t)
        parts.append(
            f"<text x='{xx:.1f}' y='{TOP + ph + 14}' text-anchor='middle' fill='#555'>"
            f"{e(label)}</text>"
        )
    parts.append(
        f"<text x='{LEFT + pw}' y='{HEIGHT - 4}' text-anchor='end' fill='#888'>"
        f"{e(data.x_label)}</text>"
    )
    for s, st, x, y in lines:
        if not len(x):
            continue
        points = " ".join(
            f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x.tolist(), y.tolist(), strict=True)
        )
        tip = f"{st.legend} · {s.key}" if st.legend != s.key else s.key
        dash = SVG_DASH[st.dash]
        parts.append(
            f"<polyline fill='none' stroke='{st.colour}' stroke-width='1.6' "
            f"stroke-dasharray='{dash}' points='{points}'><title>{e(tip)}</title></polyline>"
        )
    return "".join(parts) + "</svg>"


def _span(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        pad = (hi - lo) * 0.04
        return lo - pad, hi + pad
    pad = abs(lo) * 0.1 or 1.0
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round-numbered ticks inside [lo, hi]."""
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis (lo, hi are log10 values): whole decades when the range spans a few,
    else round values of the range, placed at their logarithm."""
    if hi - lo >= 2:
        every = max(1, math.ceil((hi - lo) / 5))
        return [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1) if k % every == 0]
    return [math.log10(t) for t in _ticks(10**lo, 10**hi) if t > 0]


def _time(ms: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


__all__ = ["render"]
