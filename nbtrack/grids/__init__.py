"""Hyperparameter grids: spec and points, workers, executors (local, Dask), results.

May import: execution, tracking, store, query, capture, record, errors, settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class DisplayHooks:
    """How a GridResult shows its comparison panel. The panel and the frontend check live above
    grids (tests/test_layers.py), so the package facade hands them in when ``nbtrack`` is
    imported, which is always before any GridResult exists (the parent package comes first).
    A plain class, not a dataclass: ``import nbtrack`` stays light (dataclasses costs ~8 ms)."""

    compare: Callable[..., Any] | None = None

    @staticmethod
    def has_frontend() -> bool:
        return False


display_hooks = DisplayHooks()
