"""How a ``%%track`` cell's code reaches IPython, and how its traceback comes back.

The input transformer takes the ``%%track ...`` line off the cell; IPython then runs the rest
exactly as it runs any cell. The call that starts the run is put in front of the cell's parsed
code (an AST transformer), not into its source: the source IPython compiles, caches and shows in
tracebacks is the user's, numbered as IPython numbers a cell magic's body (the line under the
magic is line 1), so a failing cell shows the traceback the same cell shows untracked. The run
records that traceback too: from the user's first frame on, without IPython's frames above it.
"""

from __future__ import annotations

import ast
import contextlib
import os
from collections.abc import Iterator

import IPython

PREFIX = "%%track"


def is_track(line: str) -> bool:
    return line.startswith(PREFIX) and (len(line) == len(PREFIX) or line[len(PREFIX)].isspace())


class _Pending:
    args: str | None = None  # the %%track ARGS of a cell transformed and not yet parsed


_pending = _Pending()


def transform(lines: list[str]) -> list[str]:
    """``%%track ARGS`` on the first line -> the cell without that line; ARGS wait for the cell's
    parsed code (``BeginRun``). Another cell magic on the next line is IPython's to build."""
    if not lines or not is_track(lines[0]):
        return lines
    _pending.args = lines[0][len(PREFIX) :].strip()
    return lines[1:]


# Its ARGS make the next parsed code start a run; IPython's completeness checks must not run it.
transform.has_side_effects = True  # type: ignore[attr-defined]


def forget(raw_cell: str | None = None) -> None:
    """Drop the ARGS waiting for parsed code, unless ``raw_cell`` (the cell about to run) is a
    ``%%track`` cell: a cell that did not parse, or a ``transform_cell`` that ran no cell, must
    not make a later cell tracked."""
    first = (raw_cell or "").lstrip().split("\n", 1)[0]
    if not is_track(first):
        _pending.args = None


class BeginRun(ast.NodeTransformer):
    """Puts ``module.function(ARGS)`` in front of a tracked cell's parsed code: the run starts in
    the cell, so an error there (a bad flag) stops the cell before its code runs, and an interrupt
    stops both. The call has no line of the source; its nodes say line 1, column 0."""

    def __init__(self, module: str, function: str) -> None:
        self.module, self.function = module, function

    def visit(self, node: ast.AST) -> ast.AST:
        if _pending.args is None or not isinstance(node, ast.Module):
            return node
        args, _pending.args = _pending.args, None
        code = f"__import__({self.module!r}, fromlist=['_']).{self.function}({args!r})"
        call = ast.parse(code).body[0]
        for part in ast.walk(call):
            if "lineno" in part._attributes:
                part.lineno = part.end_lineno = 1
                part.col_offset = part.end_col_offset = 0
        node.body.insert(0, call)
        return node


@contextlib.contextmanager
def users_traceback(error: BaseException | None) -> Iterator[None]:
    """While the run records ``error``, its traceback starts at the user's first frame, as the
    one IPython showed: the frames above it (IPython running the cell) are left out. The user's
    exception gets its whole traceback back afterwards (``%debug``, ``sys.last_value``)."""
    tb = error.__traceback__ if error is not None else None
    first = tb
    while first is not None and _machinery(first.tb_frame.f_code.co_filename):
        first = first.tb_next
    if error is None or first is None or first is tb:
        yield
        return
    error.__traceback__ = first
    try:
        yield
    finally:
        error.__traceback__ = tb


def _machinery(filename: str) -> bool:
    """Whether code in ``filename`` is IPython's or nbtrack's, not the user's."""
    return os.path.isabs(filename) and any(
        os.path.commonpath([filename, d]) == d for d in _MACHINERY
    )


# IPython's package and nbtrack's: the frames above the user's first one.
_MACHINERY = (
    os.path.dirname(IPython.__file__),
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
)
