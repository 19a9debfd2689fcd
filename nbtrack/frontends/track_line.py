"""The ``%%track`` line: its flags (argparse, errors raised, never printed), the RunSpec it asks
for, and %track_config's defaults merged in.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from nbtrack.errors import UsageError

if TYPE_CHECKING:  # not imported with the magic: %load_ext stays light
    from nbtrack.tracking.tracker import RunSpec


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit the kernel's process
        raise UsageError(f"%%track: {message}", "see %%track? for the flags")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%track", add_help=False, allow_abbrev=False)
    p.add_argument("--experiment", "-e")
    p.add_argument("--name", "-n")
    p.add_argument("--seed", "-s", type=int)
    p.add_argument("--data", "-d", action="append")
    p.add_argument("--param", "-p", action="append")
    p.add_argument("--tag", "-t", action="append")
    p.add_argument("--no-auto-params", action="store_true", default=None)
    p.add_argument("--nested", action="store_true", default=None)
    p.add_argument("--no-live", action="store_true", default=None)
    p.add_argument("--no-card", action="store_true", default=None)
    p.add_argument("--register", metavar="NAME")
    p.add_argument("--note")
    return p


HELP = """Track this cell as one MLflow run.

%%track [--experiment NAME] [--name RUN] [--seed N] [--data PATH ...] [-p KEY=VALUE ...]
        [--tag KEY=VALUE ...] [--no-auto-params] [--nested] [--no-live] [--no-card]
        [--register NAME] [--note TEXT]

--experiment/-e  experiment (default: %track_config, NBTRACK_EXPERIMENT, MLFLOW_EXPERIMENT_NAME,
                 else the notebook's name)
--name/-n        run name
--seed/-s        seed python, numpy and torch (default: a fresh seed, logged as random_seed)
--data/-d        a data file or folder to fingerprint (repeatable)
-p/--param       KEY=VALUE param (repeatable); literal assignments in the cell, and simple
                 values it reads from earlier cells, are params too
--tag/-t         KEY=VALUE tag (repeatable)
--no-auto-params do not log the params nbtrack finds: the cell's literal assignments,
                 papermill's parameters, simple values the cell reads from earlier cells
--nested         make the run a child of the active run
--no-live        no live learning curves under the cell
--no-card        no run card under the cell
--register       register the model the cell logged (the last one) as a new version of model
                 NAME once the cell has finished; a failed cell registers nothing
--note           the run's description (MLflow's note); default: the markdown cells right
                 above this cell in the saved notebook
"""


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}", f"write {flag} name=value")
        out[key.strip()] = value
    return out


@dataclass(frozen=True)
class CellOptions:
    """What the magic does around a tracked cell; not part of the run's record."""

    live: bool = True  # live learning curves under the cell (--no-live: False)
    card: bool = True  # the run card under the cell (--no-card: False)
    register: str | None = None  # registered model the cell's logged model becomes a version of


class TrackLine(NamedTuple):
    spec: RunSpec  # what the run records
    cell: CellOptions  # what the magic does around the cell


def parse_line(line: str, defaults: dict[str, Any] | None = None) -> TrackLine:
    """What a ``%%track`` line asks for, on top of the session's ``%track_config``."""
    from nbtrack.tracking.tracker import RunSpec

    try:
        argv = shlex.split(line)
    except ValueError as e:
        raise UsageError(f"%%track: cannot read the line ({e})", "check its quotes") from None
    ns = _parser().parse_args(argv)
    d = defaults or {}
    spec = RunSpec(
        experiment=ns.experiment or d.get("experiment"),
        name=ns.name or d.get("name"),
        seed=ns.seed if ns.seed is not None else d.get("seed"),
        data=[*d.get("data", []), *(ns.data or [])],
        params={**d.get("params", {}), **_pairs(ns.param, "-p")},
        tags={**d.get("tags", {}), **_pairs(ns.tag, "--tag")},
        auto_params=not (ns.no_auto_params or d.get("no_auto_params")),
        nested=bool(ns.nested or d.get("nested")),
        note=ns.note,
    )
    cell = CellOptions(
        live=not (ns.no_live or d.get("no_live")),
        card=not (ns.no_card or d.get("no_card")),
        register=ns.register,
    )
    return TrackLine(spec, cell)


def config_update(defaults: dict[str, Any], line: str) -> dict[str, Any]:
    spec, cell = parse_line(line)
    if cell.register:
        raise UsageError("--register names one cell's model", "put it on that %%track line")
    out = dict(defaults)
    for key in ("experiment", "name", "seed"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    for key in ("data",):
        if spec.data:
            out[key] = spec.data
    for key in ("params", "tags"):
        if getattr(spec, key):
            out[key] = {**out.get(key, {}), **getattr(spec, key)}
    for key, flag in (
        ("no_auto_params", not spec.auto_params),
        ("nested", spec.nested),
        ("no_live", not cell.live),
        ("no_card", not cell.card),
    ):
        if flag:
            out[key] = True
    return out
