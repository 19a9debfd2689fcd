"""How a grid runs: every argument of ``nbtrack.grid`` but the notebook and its params, checked in
one place. The facade, the ``nbtrack grid`` command and ``grids.run`` share this object, so an
option is named, defaulted and validated once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbtrack.errors import UsageError

EXECUTORS = ("local", "dask")
MODES = ("max", "min")


@dataclass(frozen=True)
class GridOptions:
    """See ``nbtrack.grid`` for what each option means."""

    parallel: int | None = None
    experiment: str | None = None
    executor: str = "local"
    exclude: Sequence[Mapping[str, Any] | str] = ()
    random: int | None = None
    seed: int | None = None
    metric: str | None = None
    mode: str = "max"
    resume: str | None = None
    scheduler: str | None = None
    client: Any = None
    timeout: float | None = None
    kernel_name: str | None = None
    cwd: str | os.PathLike | None = None
    output_dir: str | os.PathLike | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"mode must be 'max' or 'min', got {self.mode!r}")
        p = self.parallel
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 1):
            raise UsageError(f"parallel must be at least 1, got {p!r}", "e.g. parallel=2")
        if self.executor not in EXECUTORS:
            raise UsageError(f"unknown executor {self.executor!r}", "use 'local' or 'dask'")
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.client is not None or self.scheduler:
            object.__setattr__(self, "executor", "dask")  # a cluster given is a cluster used
        object.__setattr__(self, "exclude", tuple(self.exclude or ()))

    @property
    def ships_notebook(self) -> bool:
        """A Dask worker may not see the notebook: its tasks carry it."""
        return self.executor == "dask"
