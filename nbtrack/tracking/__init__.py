"""A tracked run's life: RunSpec, TrackedRun, start, end, orphans; metrics/ moves points to MLflow.

May import: capture, store, record, errors, settings. Never widgets, frontends or the facade.
"""
