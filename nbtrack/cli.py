"""The ``nbtrack`` command: parses, calls the core, prints."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from nbtrack.errors import NbtrackError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbtrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "nbval-sanitize", help="print the path of the nbval sanitize file for tracked notebooks"
    ).set_defaults(func=_nbval_sanitize)
    sub.add_parser(
        "close-orphans", help="close as KILLED the runs that dead kernels of this host left RUNNING"
    ).set_defaults(func=_close_orphans)
    sub.add_parser("store", help="print the tracking store nbtrack writes to").set_defaults(
        func=_store
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NbtrackError as e:
        print(f"nbtrack: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
