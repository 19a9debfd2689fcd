"""Retention: checkpoints kept as training goes, where the disk went, and freeing it without
losing what matters.

``checkpoints`` (``nbtrack.checkpoint``, ``checkpoints``, ``load_checkpoint``: LoggedModels of
the run, written in the background, keep=N), ``inventory`` (a run's files and logged models,
with sizes and kinds), ``usage`` (``nbtrack.usage``: bytes per run and kind), ``policy`` (the
never-delete rules and the keep policy: every kept run says why), ``gc`` (``nbtrack.gc``: the
plan, dry run by default; applied with a re-check before each deletion, logged on the
experiment, ``nbtrack.gc_log``).
"""
