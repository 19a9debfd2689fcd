"""``nbtrack audit-report NAME``: the compliance report of a model version, as one HTML file."""

from __future__ import annotations

import argparse
from typing import Any


def add(sub: Any) -> None:
    p = sub.add_parser(
        "audit-report",
        help="write the compliance report of a model's production (or given) version: data, "
        "code, environment, reproductions, registry moves, inference runs (one HTML file)",
    )
    p.add_argument("name", help="the registered model")
    p.add_argument("--version", help="this version instead of the production one")
    p.add_argument("--out", help="the file to write (default: NAME-vN-audit.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nbtrack.provenance import report

    path = report.write(args.name, args.version, args.out)
    print(f"wrote the audit report of {args.name} to {path}")
    return 0
