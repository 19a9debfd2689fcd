"""What nbtrack renders as HTML shows invisible characters visibly: a run name with an RTL
override cannot reorder the page, a NUL or escape character cannot hide text."""

from __future__ import annotations

import pytest

import nbtrack
from nbtrack.html_text import escape
from nbtrack.query.compare import table_html
from nbtrack.widgets.card import card_for

RTL = "\u202e"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (f"invoice{RTL}gpj.exe", "invoice\\u202egpj.exe"),
        ("a\x00b", "a\\u0000b"),
        ("bell\x07 esc\x1b[31m", "bell\\u0007 esc\\u001b[31m"),
        ("\u2066isolate\u2069 \u200fmark", "\\u2066isolate\\u2069 \\u200fmark"),
        ("<b>&\"'</b>", "&lt;b&gt;&amp;&quot;&#x27;&lt;/b&gt;"),
        ("line\nand\ttab", "line\nand\ttab"),  # layout stays
        ("naïve 日本 ✓", "naïve 日本 ✓"),  # ordinary text stays
    ],
)
def test_escape_shows_invisible_characters(raw, shown):
    assert escape(raw) == shown


def test_a_hostile_run_name_and_param_are_shown_escaped_in_the_table_and_the_card(store):
    name = f"run{RTL}gpj.exe"
    with nbtrack.run(experiment="hostile", name=name) as r:
        nbtrack.log_params(note=f"ok{RTL}\x07")
    df = nbtrack.runs("hostile")
    html = table_html(df)
    assert RTL not in html and "\x07" not in html
    assert "run\\u202egpj.exe" in html and "ok\\u202e\\u0007" in html
    card = card_for(r, n_params=1, metrics={}, server_url=None)._repr_html_()
    assert RTL not in card and "run\\u202egpj.exe" in card
