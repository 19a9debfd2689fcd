"""Run names for runs the user did not name: ``adjective-noun-number``, as MLflow makes them.

Not MLflow's generator: it draws from Python's global ``random``, which ``--seed`` seeds, so every
seeded cell got the same name ("intelligent-eel-228" three times). This one draws from the
operating system (``random.SystemRandom``), which no seed reaches.
"""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fair", "gentle",
    "glad", "keen", "lively", "lucid", "mellow", "merry", "nimble", "noble", "plucky", "polite",
    "proud", "quick", "quiet", "rapid", "shy", "silent", "sleek", "smart", "steady", "sunny",
    "swift", "tidy", "vivid", "warm", "wise", "witty",
)  # fmt: skip
_NOUNS = (
    "badger", "bee", "crane", "deer", "dove", "eel", "falcon", "finch", "fox", "gecko", "hare",
    "heron", "ibis", "jay", "koala", "lark", "lemur", "lynx", "mole", "moth", "newt", "otter",
    "owl", "panda", "quail", "raven", "robin", "seal", "shrew", "slug", "snail", "stork", "swan",
    "toad", "vole", "wren",
)  # fmt: skip

_draw = random.SystemRandom()


def run_name() -> str:
    """A fresh name (36 x 36 x 1000 of them), whatever seeds the run applies."""
    return f"{_draw.choice(_ADJECTIVES)}-{_draw.choice(_NOUNS)}-{_draw.randrange(1000)}"
