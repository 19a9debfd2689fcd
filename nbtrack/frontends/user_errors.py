"""nbtrack's user errors in a notebook: the sentence, not nbtrack's internal frames.

A ``UserError`` (a bad argument to ``nbtrack.promote``, ``rollback``, ``reproduce``, ``diff``,
``compare``, ``runs``, ``log``...) already says in one sentence what to do; IPython would print it
under 20-75 lines of nbtrack's own traceback, where users look first. Any other exception keeps
its whole traceback: it may be nbtrack's bug, and the frames say where.
"""

from __future__ import annotations

from typing import Any

from nbtrack.errors import UserError


def _one_line(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None) -> None:
    # IPython's own short form: the exception's line, and "%tb" for the whole traceback.
    shell.showtraceback((etype, value, tb), exception_only=True)


def install(shell: Any) -> None:
    """Show nbtrack's user errors as one line in ``shell``. IPython keeps one custom handler: if
    another extension set its own, it stays, and nbtrack's errors show in full."""
    if not getattr(shell, "custom_exceptions", None):
        shell.set_custom_exc((UserError,), _one_line)


def uninstall(shell: Any) -> None:
    if getattr(shell, "custom_exceptions", None) == (UserError,):
        shell.set_custom_exc((), None)
