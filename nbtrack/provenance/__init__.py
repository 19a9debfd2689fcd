"""Provenance from data to predictions: inference runs, the prediction index and audit, the
graph, the compliance report.

Modules: ``references`` (a model reference -> name, version, URI, training run; loading it once
per version), ``rows`` (ids, row hashes, input and prediction digests, the input's profile),
``inference`` (``nbtrack.predict`` and the ``nbtrack.inference`` serving context: one inference
run each), ``batches`` (a serving loop's batches written and logged in the background),
``alias_history`` (which aliases a version held at a moment, replayed from the registry's audit
trail), ``audit`` (``nbtrack.audit_prediction``), ``graph`` (``nbtrack.lineage``), ``report``
(``nbtrack audit-report``), ``labels`` (how a moment and an experiment are written).

May import: ``model_registry``, ``query``, ``tracking``, ``capture``, ``store`` and below.
"""
