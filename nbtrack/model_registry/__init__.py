"""The model registry: versions, moves (promote, rollback, archive) and their audit trail.

Named ``model_registry`` because ``nbtrack.registry`` is the facade's panel function.
May import: store, record, capture.redact and capture.redaction, errors, settings.
"""
