"""A run card that says MLflow is catching up is redrawn as it does, where a frontend shows it.

The cell ends when its code ends (tracking/metrics): its card may say "metrics: 268,000 of
300,000 in MLflow, catching up". In JupyterLab, Notebook 7 or VS Code that line follows the
catch-up (once a second, through the display's id) and goes away when MLflow holds every point.
Headless runs (papermill, nbconvert, nbval) keep the card as drawn: their saved notebook should
not change after the cell.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from nbtrack import logs

_log = logs.get(__name__)

EVERY = 1.0  # seconds between redraws
GIVE_UP = 3600.0  # a catch-up that takes longer is left to the card's last state


def show(card, progress: Callable[[], tuple[int, int] | None]) -> None:
    """Display ``card``; while it says MLflow is catching up and a frontend is attached, redraw
    it with ``progress()`` (points in MLflow, points logged; None when done)."""
    from IPython.display import display

    from nbtrack.widgets.live import has_frontend

    if not getattr(card, "catching_up", None) or not has_frontend():
        display(card)
        return
    handle = display(card, display_id=True)
    threading.Thread(
        target=_follow, args=(card, handle, progress), name="nbtrack-card", daemon=True
    ).start()


def _follow(card, handle, progress: Callable[[], tuple[int, int] | None]) -> None:
    deadline = time.monotonic() + GIVE_UP
    shown = card.catching_up
    try:
        while shown is not None and time.monotonic() < deadline:
            time.sleep(EVERY)  # a redraw a second: the frontend need not see every range
            now = progress()
            if now != shown:
                handle.update(dataclasses.replace(card, catching_up=now))
                shown = now
    except Exception:
        _log.debug("redrawing the run card failed", exc_info=True)
