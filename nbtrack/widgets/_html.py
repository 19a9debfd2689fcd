"""Escaping and number formatting for every widget: one place that decides how a value is shown.

Every string a widget puts into HTML goes through ``esc`` (HTML, attributes included; invisible
controls shown, see nbtrack.html_text) or
``plotly_text`` (plotly's labels, names and hover text, which plotly renders as a small subset of
HTML).
"""

from __future__ import annotations

from typing import Any

from nbtrack.html_text import escape


def esc(value: Any) -> str:
    """``value`` as HTML text, safe inside an attribute too; None is the empty string."""
    return escape(value, quote=True)


def plotly_text(value: Any) -> str:
    """``value`` for plotly's names, titles and hover text. Plotly decodes &amp; &lt; &gt; (not
    &quot;): escaping these shows a user's string literally."""
    return escape(value, quote=False)


def number(v: float) -> str:
    """An axis tick: four significant digits in the readable range, two outside it."""
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.2g}"


def metric(v: float) -> str:
    """A metric's value on a card or a version row."""
    return f"{v:.4g}"


def hint(text: str) -> str:
    """A grey one-line hint in a panel ("select two or more rows ...")."""
    return f"<div style='font-size:12px;color:#888;padding:4px'>{esc(text)}</div>"


__all__ = ["esc", "hint", "metric", "number", "plotly_text"]
