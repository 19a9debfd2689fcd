"""``nbtrack usage`` and ``nbtrack gc``: where the disk went, and freeing it, from a shell."""

from __future__ import annotations

import argparse
from typing import Any


def add(sub: Any) -> None:
    u = sub.add_parser(
        "usage", help="bytes per run and per kind (checkpoints, models, snapshots, other)"
    )
    u.add_argument("--experiment", "-e", help="default: every experiment")
    u.add_argument("--limit", type=int, default=20, help="the largest N runs (default 20)")
    u.set_defaults(func=usage)

    g = sub.add_parser(
        "gc",
        help="free the disk of an experiment's runs (dry run unless --apply)",
        description="Delete the artifacts outside nbtrack/ and the unregistered logged models "
        "of the runs the policy does not keep; params, metrics and the nbtrack/ snapshot stay. "
        "Never deleted: a registered version's run, runs whose versions hold or held an alias, "
        "runs tagged nbtrack.keep, running runs, reproductions of kept runs.",
    )
    g.add_argument("--experiment", "-e", required=True)
    g.add_argument("--keep-top", type=int, metavar="N", help="keep the best N runs by --metric")
    g.add_argument("--metric", help="the metric --keep-top ranks by")
    g.add_argument("--mode", choices=("max", "min"), default="max", help="for --metric")
    g.add_argument("--keep-last", type=int, metavar="N", help="keep the N newest runs")
    g.add_argument("--older-than", metavar="AGE", help="keep runs newer than AGE: 30m, 12h, 7d")
    g.add_argument("--kinds", help="what to delete: checkpoints,models,other (default: all)")
    g.add_argument(
        "--delete-runs",
        action="store_true",
        help="also soft-delete the collected runs (MLflow's `mlflow gc` removes them for good)",
    )
    g.add_argument("--apply", action="store_true", help="delete (default: a dry run)")
    g.add_argument("--force", action="store_true", help="apply a policy that keeps no run")
    g.add_argument("--all", action="store_true", help="list every run, not only the largest 30")
    g.set_defaults(func=gc)

    log = sub.add_parser("gc-log", help="the applied gcs of an experiment: who, when, freed")
    log.add_argument("--experiment", "-e", required=True)
    log.set_defaults(func=gc_log)


def usage(args: argparse.Namespace) -> int:
    import nbtrack
    from nbtrack.retention.gc import human

    found = nbtrack.usage(args.experiment)
    print(found)
    frame = found.frame.head(args.limit)
    _table(frame, ("checkpoints", "models", "snapshots", "other", "total"), human)
    return 0


def gc(args: argparse.Namespace) -> int:
    import nbtrack
    from nbtrack.retention.gc import human

    result = nbtrack.gc(
        args.experiment,
        keep_top=args.keep_top,
        metric=args.metric,
        keep_last=args.keep_last,
        older_than=args.older_than,
        apply=args.apply,
        mode=args.mode,
        kinds=args.kinds,
        delete_runs=args.delete_runs,
        force=args.force,
    )
    print(result)
    frame = result.frame
    kept = frame[frame["action"] == "keep"]
    going = frame[frame["action"] == "collect"]
    if len(kept):
        print(f"\nkept ({len(kept)} runs), and why:")
        _table(kept[["run_id", "name", "status", "kept_why"]], (), human)
    if len(going):
        shown = going if args.all else going.head(30)
        more = "" if len(shown) == len(going) else f", the largest {len(shown)} (--all: every one)"
        print(f"\n{'collected' if args.apply else 'would go'} ({len(going)} runs{more}):")
        _table(shown[["run_id", "name", "status", "bytes", "files", "models"]], ("bytes",), human)
    if not args.apply:
        print("\ndry run: nothing was deleted; add --apply to delete")
    return 0


def gc_log(args: argparse.Namespace) -> int:
    import nbtrack
    from nbtrack.retention.gc import human

    frame = nbtrack.gc_log(args.experiment)
    if frame.empty:
        print(f"no gc was applied to {args.experiment!r}")
        return 0
    frame = frame.drop(columns=["run_ids"])
    frame["policy"] = [_policy_text(p) for p in frame["policy"]]
    _table(frame, ("bytes_freed",), human)
    return 0


def _policy_text(policy: object) -> str:
    if not isinstance(policy, dict):
        return str(policy)
    return " ".join(
        f"{k}={','.join(v) if isinstance(v, list) else v}"
        for k, v in policy.items()
        if v not in (None, False)
    )


def _table(frame, sizes: tuple[str, ...], human) -> None:
    from nbtrack.frontends.cli import _print_table

    headers = tuple(str(c) for c in frame.columns)
    rows = [
        tuple(
            human(int(v)) if c in sizes else ("-" if v in ("", None) else str(v))
            for c, v in zip(headers, row, strict=True)
        )
        for row in frame.itertuples(index=False)
    ]
    _print_table(headers, rows)
