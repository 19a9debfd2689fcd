"""Hyperparameter grids: spec and points, workers, executors (local, Dask), results.

May import: execution, tracking, store, query, capture, record, errors, settings.
"""
