"""The read side: run tables with MLflow filter evaluation, diffs between runs, curve data.

May import: store, record, capture (pure parsers), errors, settings. Never widgets or frontends.
"""
