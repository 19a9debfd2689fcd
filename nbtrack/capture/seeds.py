"""Seeding python, numpy and torch, so that every tracked run can be replayed.

numpy seeds its global generator from OS entropy when it is imported, so a cell that imports
numpy after being seeded would not be reproducible; importing numpy (~100 ms) or torch (seconds)
just to seed it would slow every first cell. Instead, a library not imported yet is seeded the
moment it finishes importing, by a one-shot import hook that lives while the tracked cell runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import random
import secrets
import sys
from collections.abc import Callable
from types import ModuleType


def draw_seed() -> int:
    """A fresh seed for a run that asked for none; logged, so the run can be replayed."""
    return secrets.randbelow(2**31)


def _seed_numpy(module: ModuleType, seed: int) -> None:
    module.random.seed(seed)


def _seed_torch(module: ModuleType, seed: int) -> None:
    module.manual_seed(seed)  # also seeds every CUDA device


SEEDERS: dict[str, Callable[[ModuleType, int], None]] = {
    "numpy": _seed_numpy,
    "torch": _seed_torch,
}


class _Loader(importlib.abc.Loader):
    """Wraps a module's real loader and seeds the module right after it executes."""

    def __init__(self, loader: importlib.abc.Loader, after: Callable[[ModuleType], None]):
        self._loader, self._after = loader, after

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        # Hand the module its real loader back: resource readers and reloads must not see ours.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._after(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _SeedOnImport(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.pending: dict[str, int] = {}

    def find_spec(self, fullname, path, target=None):
        seed = self.pending.pop(fullname, None)
        if seed is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        seeder = SEEDERS[fullname]
        spec.loader = _Loader(spec.loader, lambda module: _safe(seeder, module, seed))
        return spec


def _safe(seeder: Callable[[ModuleType, int], None], module: ModuleType, seed: int) -> None:
    try:
        seeder(module, seed)
    except Exception:  # a library that changed its API must not break the user's import
        logging.getLogger(__name__).debug("seeding %s failed", module.__name__, exc_info=True)


_hook = _SeedOnImport()


def apply_seed(seed: int) -> list[str]:
    """Seed python now, and numpy and torch now or when they are imported.

    Returns the libraries seeded now; the others are seeded on import until ``clear_pending()``.
    """
    random.seed(seed)
    seeded = ["random"]
    _hook.pending.clear()
    for name, seeder in SEEDERS.items():
        module = sys.modules.get(name)
        if module is not None:
            _safe(seeder, module, seed)
            seeded.append(name)
        else:
            _hook.pending[name] = seed
    if _hook.pending and _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)
    return seeded


def clear_pending() -> None:
    """Remove the import hook once the tracked cell is over."""
    _hook.pending.clear()
    if _hook in sys.meta_path:
        sys.meta_path.remove(_hook)
