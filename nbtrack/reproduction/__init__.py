"""Running a tracked run again from its record: rebuild, pre-run checks, verdict report.

May import: execution, store, query, capture, record, errors, settings.
"""
