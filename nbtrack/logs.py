"""nbtrack's loggers (not ``nbtrack/log.py``: that submodule would replace the public function
``nbtrack.log``): ``nbtrack`` and one child per subpackage (``nbtrack.tracking``, ...).

Failures inside nbtrack's own machinery (a run card that cannot be drawn, a live view that stops,
a spool that cannot be read) must not break the user's cell, but they must leave a trace: every
broad ``except`` logs at debug with the traceback. ``NBTRACK_DEBUG=1`` shows them on stderr.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

ROOT = "nbtrack"


def get(name: str) -> logging.Logger:
    """The logger for a module: ``get(__name__)`` gives ``nbtrack.<subpackage>.<module>``."""
    configure()
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


@contextlib.contextmanager
def failures_logged(logger: logging.Logger, what: str) -> Iterator[None]:
    """``contextlib.suppress(Exception)`` that leaves a trace: the failure is logged at debug
    with its traceback, and the code after the block goes on. ``what`` says what was attempted
    ("drawing the run card")."""
    try:
        yield
    except Exception:
        logger.debug("%s failed", what, exc_info=True)


_configured = False


def configure() -> None:
    """Set up the ``nbtrack`` logger once per process (the frontends call it at start)."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger(ROOT)
    from nbtrack import settings

    if settings.debug():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("nbtrack %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    else:
        # Without NBTRACK_DEBUG nothing below WARNING reaches the notebook's output.
        root.addHandler(logging.NullHandler())
