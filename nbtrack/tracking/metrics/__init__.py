"""Metric points from ``nbtrack.log`` to MLflow: validation, queue, spool, writer processes.

May import: store, record, errors, settings.
"""
