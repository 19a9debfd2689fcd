"""Telling series apart: one colour per run (or per role within a run), a dash per role
(train solid, val dashed, test dotted).
"""

from __future__ import annotations

from dataclasses import dataclass

from nbtrack.query.curves import Curves, Series

# Plotly's default qualitative palette: the same colours in the widget and the static picture.
PALETTE = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)
DASHES = {"train": "solid", "": "solid", "val": "dash", "test": "dot"}
_ROLE_COLOUR = {"train": 0, "": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Style:
    colour: str
    dash: str  # plotly's names: solid, dash, dot, dashdot
    legend: str  # the legend entry this series belongs to (not escaped)
    group: str  # series of one legend entry toggle together
    first: bool  # the series that shows its group's legend entry


def _solid(s: Series) -> bool:
    return DASHES.get(s.role) == "solid"


def styles(curves: Curves) -> list[Style]:
    """How each series of ``curves`` is drawn, in order.

    Several runs: one colour per run (its name in the legend), the line style tells train from
    val. One run (the live view): colour by role, one legend entry per metric, so that
    train_loss and val_loss differ at a glance."""
    runs = curves.runs()
    out: list[Style] = []
    seen: set[str] = set()
    if len(runs) > 1:
        names = curves.names()
        index = {r.run_id: i for i, r in enumerate(runs)}
        # The legend entry of a run is drawn like its series that carries it: prefer a solid one.
        carrier: dict[str, int] = {}
        for i, s in enumerate(curves.series):
            current = carrier.get(s.run.run_id)
            if current is None or (_solid(s) and not _solid(curves.series[current])):
                carrier[s.run.run_id] = i
        for i, s in enumerate(curves.series):
            group = s.run.run_id
            colour = PALETTE[index[group] % len(PALETTE)]
            dash = DASHES.get(s.role, "dashdot")
            out.append(Style(colour, dash, names[group], group, carrier[group] == i))
        return out
    used: dict[str, set[int]] = {}
    for s in curves.series:
        taken = used.setdefault(s.family, set())
        c = _ROLE_COLOUR.get(s.role, 3)
        while c in taken:
            c += 1
        taken.add(c)
        dash = DASHES.get(s.role, "dashdot")
        out.append(Style(PALETTE[c % len(PALETTE)], dash, s.key, s.key, s.key not in seen))
        seen.add(s.key)
    return out


# -- building series ---------------------------------------------------------------------------
