"""Text made safe for HTML, in one place: every page, card, table and report nbtrack renders
escapes user-given text (run names, params, tags, model names, reasons) with ``escape``.

Besides HTML's own characters, characters that change what a reader sees without being seen
themselves are shown as visible escapes (``\\u202e``): bidirectional overrides and isolates (an
RTL override in a run name reorders the rest of the line, so "gpj.exe" reads as "exe.jpg") and
control characters (a NUL, a backspace, an escape). Newlines and tabs stay.
"""

from __future__ import annotations

import html
import re

_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _visible(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group(0)):04x}"


def visible(value: object) -> str:
    """``value`` as text with its invisible controls shown as ``\\uXXXX`` and nothing else
    changed: for text that goes in as text, not markup (a browser's ``textContent``)."""
    return _INVISIBLE.sub(_visible, "" if value is None else str(value))


def escape(value: object, quote: bool = True) -> str:
    """``value`` as HTML text (safe inside an attribute when ``quote``), invisible controls
    shown as ``\\uXXXX``; None is the empty string."""
    return html.escape(visible(value), quote=quote)


__all__ = ["escape", "visible"]
