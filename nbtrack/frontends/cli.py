"""The ``nbtrack`` command: parses, calls the core, prints."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from nbtrack.errors import NbtrackError
from nbtrack.frontends import cli_flush, cli_lineage, cli_report, cli_retention

DESCRIPTION = (
    "nbtrack: notebook experiment tracking on MLflow. Run notebooks over grids, reproduce a "
    "tracked run, move model versions between stages, and tidy up runs from the command line."
)


def _nbval_sanitize(args: argparse.Namespace) -> int:
    print(resources.files("nbtrack").joinpath("nbval_sanitize.cfg"))
    return 0


def _close_orphans(args: argparse.Namespace) -> int:
    import nbtrack

    closed = nbtrack.close_orphans()
    for run_id in closed:
        print(f"closed {run_id} as KILLED")
    if not closed:
        print("no orphaned runs")
    return 0


def _store(args: argparse.Namespace) -> int:
    from nbtrack import store

    print(store.tracking_uri())
    return 0


# -- the model registry ------------------------------------------------------------------------


def _registry_list(args: argparse.Namespace) -> int:
    from nbtrack.model_registry import registry as models

    rows = [
        (
            m.name,
            m.production or "-",
            m.staging or "-",
            m.previous or "-",
            m.latest or "-",
            m.updated.strftime("%Y-%m-%d %H:%M") if m.updated else "-",
        )
        for m in models.list_models()
    ]
    if not rows:
        print("no registered models")
        return 0
    _print_table(("model", "production", "staging", "previous", "latest", "updated (UTC)"), rows)
    return 0


def _registry_show(args: argparse.Namespace) -> int:
    from nbtrack.model_registry import registry as models

    # The versions first: an unknown model is one error line on stderr (main), not two.
    versions = models.versions(args.name)
    try:
        print(repr(models.production(args.name)))
    except NbtrackError as e:  # a known model with nothing in production: say so, go on
        print(e)
    rows = [
        (
            i.version,
            ",".join(i.aliases) or "-",
            i.stage or "-",
            i.run_id or "-",
            i.run_status or "-",
            ", ".join(f"{k}={v:.4g}" for k, v in i.key_metrics(3)) or "-",
        )
        for i in versions
    ]
    _print_table(("version", "aliases", "stage", "run", "status", "key metrics"), rows)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from nbtrack.model_registry import registry as models

    print(models.promote(args.name, args.version, args.stage, args.reason, force=args.force))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from nbtrack.model_registry import registry as models

    print(models.rollback(args.name, args.reason))
    return 0


def _archive(args: argparse.Namespace) -> int:
    from nbtrack.model_registry import registry as models

    print(models.archive(args.name, args.version, args.reason))
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json

    from nbtrack.model_registry import registry as models

    records = models.audit_records(args.name)
    if args.limit:
        records = records[-args.limit :]
    if args.json:
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return 0
    if not records:
        print(f"no moves recorded for {args.name}")
        return 0
    rows = [
        (
            r["when"] or "-",
            r["who"] or "-",
            r["action"] or "-",
            r["stage"] or "-",
            f"{r['from_version'] or '-'} -> {r['to_version'] or '-'}",
            r["reason"] or "",
        )
        for r in records
    ]
    _print_table(("when (UTC)", "who", "action", "stage", "from -> to", "reason"), rows)
    return 0


# -- reproduction ------------------------------------------------------------------------------

# Exit codes of `nbtrack reproduce`: 0 REPRODUCED, 1 DRIFTED, 3 FAILED, 4 RAN (it ran, but no
# metric was compared: not a pass); 2: nbtrack's own errors (a bad run id, a usage error).
REPRO_EXIT = {"REPRODUCED": 0, "DRIFTED": 1, "FAILED": 3, "RAN": 4}
REPRO_EXIT_HELP = (
    "exit codes: 0 REPRODUCED (at least one metric compared, all within tolerance), "
    "1 DRIFTED (a metric outside tolerance), 2 nbtrack's own error (unknown run, bad option), "
    "3 FAILED (nothing ran, or a cell failed), 4 RAN (it ran, but no metrics to compare)"
)


def _reproduce(args: argparse.Namespace) -> int:
    import json

    from nbtrack.reproduction import reproduce as repro

    report = repro.reproduce(
        args.run_id,
        rtol=args.rtol,
        atol=args.atol,
        metrics=args.metric or None,
        timeout=args.timeout,
        strict=args.strict,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        print(report)
    return REPRO_EXIT.get(report.verdict, 3)


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run a tracked run again from its record and say whether its metrics hold "
        "(exit 0 REPRODUCED, 1 DRIFTED, 3 FAILED, 4 RAN: no metrics to compare)",
        description="Run a tracked run again from its record and say whether its metrics hold.",
        epilog=REPRO_EXIT_HELP,
    )
    p.add_argument("run_id")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (default 1e-6)")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0)")
    p.add_argument(
        "--metric", action="append", help="a metric to compare (repeatable; default: all)"
    )
    p.add_argument("--timeout", type=float, help="seconds the re-execution may take")
    p.add_argument(
        "--strict", action="store_true", help="refuse to run when the record does not match"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_reproduce)


# -- grids -------------------------------------------------------------------------------------

# Exit codes of `nbtrack grid`: 0 every point FINISHED, 1 some did not, 130 stopped (Ctrl-C).


def _grid(args: argparse.Namespace) -> int:
    import json

    from nbtrack.capture.source import parse_param
    from nbtrack.grids import run as sweeprun
    from nbtrack.grids import spec as sweep
    from nbtrack.grids.options import GridOptions

    if not args.notebook and not args.resume:
        raise _usage("nbtrack grid needs a NOTEBOOK (or --resume GRID_RUN_ID)")
    params = {}
    for name, *values in args.param or []:
        if not values:
            raise _usage(f"-p {name} needs at least one value", f"e.g. -p {name} 0.01 0.1")
        parsed = [parse_param(v) for v in values]
        # One range (``-p lr "loguniform(1e-4, 1e-1)"``) stays a range; else a list of values.
        params[name] = values[0] if len(values) == 1 and sweep.parse_range(values[0]) else parsed
    try:
        options = GridOptions(
            parallel=args.parallel,
            experiment=args.experiment,
            executor=args.executor,
            exclude=args.exclude or (),
            random=args.random,
            seed=args.seed,
            metric=args.metric,
            mode=args.mode,
            resume=args.resume,
            scheduler=args.scheduler,
            timeout=args.timeout,
            output_dir=args.output_dir,
            progress=not args.no_progress,
        )
        result = sweeprun.run(args.notebook, params, options)
    except KeyboardInterrupt as e:
        print(f"nbtrack: {e or 'stopped'}", file=sys.stderr)
        return 130
    df = result.df
    if args.json:
        print(df.to_json(orient="records"))
    else:
        print(repr(result).strip("<>"))
        shown = [c for c in df.columns if c not in ("run_id", "runs")]
        metric_cols = [c for c in shown if c.startswith("metrics.")]
        if args.metric and f"metrics.{args.metric}" in metric_cols:
            metric_cols = [f"metrics.{args.metric}"]
        keep = [c for c in shown if not c.startswith("metrics.")]
        keep[keep.index("status") + 1 : keep.index("status") + 1] = metric_cols[:4]
        keep.append("run_id")
        rows = [
            tuple(_cell(v, c) for v, c in zip(row, keep, strict=True))
            for row in df[keep].itertuples(index=False)
        ]
        _print_table(tuple(c.removeprefix("params.") for c in keep), rows)
        print(f"grid run {result.grid_run_id} in experiment {json.dumps(result.experiment)}")
    return 0 if set(df["status"]) == {"FINISHED"} else 1


def _cell(value: object, column: str) -> str:
    item = getattr(value, "item", None)
    value = item() if callable(item) else value  # numpy scalars as Python's
    if column.startswith("params."):
        return repr(value) if not isinstance(value, str) else value
    if isinstance(value, float):
        return "-" if value != value else f"{value:.1f}" if column == "duration" else f"{value:.4g}"
    return str(value if value is not None and value != "" else "-")


def _usage(message: str, hint: str = "") -> NbtrackError:
    from nbtrack.errors import UsageError

    return UsageError(message, hint)


def _add_grid(sub) -> None:
    p = sub.add_parser(
        "grid",
        help="run a parameterized notebook over a grid of params, each point a child run "
        "(exit 0 all FINISHED, 1 some not, 130 stopped)",
        description="Run NOTEBOOK (papermill's parameters cell) once per point of the grid, in "
        "fresh kernels; one parent MLflow run, each point's tracked cells its child runs.",
    )
    p.add_argument("notebook", nargs="?", help="the notebook (not with --resume)")
    p.add_argument(
        "-p",
        "--param",
        nargs="+",
        action="append",
        metavar=("NAME", "VALUE"),
        help="a param and its values (repeatable): -p lr 0.001 0.01, or a range to sample "
        "with --random: -p lr 'loguniform(1e-4, 1e-1)' (also uniform(a, b), randint(a, b))",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="K=V,...",
        help="leave out the points with these values (repeatable): --exclude lr=0.1,batch_size=32",
    )
    p.add_argument("--random", type=int, metavar="N", help="sample N points instead of all")
    p.add_argument("--seed", type=int, help="seed of --random (default: drawn and recorded)")
    p.add_argument("--parallel", type=int, help="points at a time (default 1; dask: its threads)")
    p.add_argument("--experiment", "-e", help="default: the notebook's %%track --experiment")
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://host:8786")
    p.add_argument("--metric", help="show the best value of this metric while it runs")
    p.add_argument("--mode", choices=("max", "min"), default="max", help="for --metric")
    p.add_argument("--timeout", type=float, help="seconds one point may take")
    p.add_argument("--resume", metavar="GRID_RUN_ID", help="run the points not FINISHED")
    p.add_argument("--output-dir", help="keep the executed notebooks here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the points as JSON records")
    p.set_defaults(func=_grid)


def _print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


def _add_registry(sub) -> None:
    registry = sub.add_parser("registry", help="the model registry: list models, show one")
    reg = registry.add_subparsers(dest="registry_command", required=True)
    reg.add_parser(
        "list", help="registered models and which versions are in production and staging"
    ).set_defaults(func=_registry_list)
    show = reg.add_parser("show", help="what is in production, and the versions of a model")
    show.add_argument("name")
    show.set_defaults(func=_registry_show)

    promote = sub.add_parser("promote", help="move a stage (alias) of a model to a version")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--stage", default="production", help="production (default) or staging")
    promote.add_argument("--reason", help="why, for the audit trail")
    promote.add_argument(
        "--force", action="store_true", help="promote even if the version's run FAILED"
    )
    promote.set_defaults(func=_promote)

    rollback = sub.add_parser("rollback", help="put the previous production version back")
    rollback.add_argument("name")
    rollback.add_argument("--reason", help="why, for the audit trail")
    rollback.set_defaults(func=_rollback)

    archive = sub.add_parser("archive", help="archive a version (not the production one)")
    archive.add_argument("name")
    archive.add_argument("version")
    archive.add_argument("--reason", help="why, for the audit trail")
    archive.set_defaults(func=_archive)

    audit = sub.add_parser("audit", help="the audit trail of a model: who moved what, when, why")
    audit.add_argument("name")
    audit.add_argument("--limit", type=int, help="only the latest N records")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.set_defaults(func=_audit)


NBVAL_HELP = (
    "print the path of the nbval sanitize file for tracked notebooks "
    '(pytest --nbval --nbval-sanitize-with "$(nbtrack nbval-sanitize)")'
)
ORPHANS_HELP = "close as KILLED the runs that dead kernels of this host left RUNNING"
STORE_HELP = "print the tracking store nbtrack writes to (NBTRACK_TRACKING_URI, else MLflow's)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbtrack", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("nbval-sanitize", _nbval_sanitize, NBVAL_HELP),
        ("close-orphans", _close_orphans, ORPHANS_HELP),
        ("store", _store, STORE_HELP),
    ):
        sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".").set_defaults(
            func=func
        )
    cli_flush.add(sub)
    cli_lineage.add(sub)
    cli_report.add(sub)
    cli_retention.add(sub)  # usage, gc, gc-log
    _add_registry(sub)
    _add_reproduce(sub)
    _add_grid(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from nbtrack import logs

    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NbtrackError as e:
        print(f"nbtrack: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
