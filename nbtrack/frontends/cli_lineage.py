"""``nbtrack audit-prediction ID`` and ``nbtrack lineage ...``: lineage from a shell."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add(sub: Any) -> None:
    p = sub.add_parser(
        "audit-prediction",
        help="what made a prediction: model version, its aliases then, training run, data, code",
    )
    p.add_argument("prediction_id")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=audit_prediction)

    g = sub.add_parser(
        "lineage",
        help="datasets -> training runs -> model versions -> inference runs, from any of them",
    )
    g.add_argument("target", nargs="?", help="a model name, a run id or a prediction id")
    g.add_argument("--version", help="with a model name: one version")
    g.add_argument("--data-hash", help="start from a data digest: what was trained on it")
    g.add_argument("--json", action="store_true", help="the graph as JSON (nodes and edges)")
    g.set_defaults(func=lineage)


def audit_prediction(args: argparse.Namespace) -> int:
    from nbtrack.provenance import audit

    found = audit.audit_prediction(args.prediction_id)
    print(json.dumps(found.to_dict(), default=str, sort_keys=True) if args.json else found)
    return 0


def lineage(args: argparse.Namespace) -> int:
    from nbtrack.provenance import graph

    g = graph.lineage(args.target, version=args.version, data_hash=args.data_hash)
    if args.json:
        print(json.dumps(g.to_dict(), sort_keys=True))
        return 0
    print(g)
    names = {n["id"]: n["label"] for n in g.nodes.values()}
    for e in g.edges:
        print(f"  {names[e['source']]}  --{e['kind']}-->  {names[e['target']]}")
    return 0
