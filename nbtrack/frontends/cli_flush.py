"""``nbtrack flush``: send what ended processes left in this machine's metric log."""

from __future__ import annotations

import argparse
from typing import Any


def add(sub: Any) -> None:
    p = sub.add_parser(
        "flush",
        help="send the metric points ended processes left on this machine, and end their runs",
    )
    p.add_argument("--to", help="send them to this tracking URI instead (a moved server)")
    p.add_argument("--from", dest="from_uri", help="with --to: only the logs bound for this URI")
    p.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Send what ended processes left in this machine's metric log, and end their runs."""
    from nbtrack import settings, store
    from nbtrack.tracking.metrics import catchup

    store.configure()
    state = settings.current().state_dir
    if args.to:
        moved = catchup.repoint(state, args.to, args.from_uri)
        print(f"{moved} run logs now go to {args.to}")
    left = catchup.run(state, timeout=args.timeout, say=print)
    if left:
        print(f"{left} metric points are still not in their store; run nbtrack flush again")
        return 1
    return 0
