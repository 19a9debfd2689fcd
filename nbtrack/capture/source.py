"""Params from a cell's source: top-level literal assignments, read with ``ast``, never executed.

``lr = 0.01`` at the top level of a tracked cell is config; nbtrack logs it as param ``lr`` with
the value as written. A param must not lie, so a name whose value the source does not pin down by
the end of the cell (rebound to an expression, mutated, augmented, rebound in a loop or an ``if``)
is dropped rather than logged with a value it no longer has.

Values are returned as Python objects; ``format_param`` writes them as MLflow param strings.
Nothing here redacts: the caller passes params through the run's redaction pass (capture.redaction).
"""

from __future__ import annotations

import ast

# Methods that change a list, dict or set in place: `layers.append(16)` makes the literal
# `layers = [64, 32]` a lie.
_MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "sort",
        "reverse",
        "update",
        "setdefault",
        "popitem",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)

_DROPPED = object()  # a name whose final value the source does not give
_NOT_LITERAL = object()


def _literal(node: ast.expr) -> object:
    """The value of a literal expression, or _NOT_LITERAL. ``...`` is a placeholder, not config."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL
    return _NOT_LITERAL if value is Ellipsis else value


def _root_name(node: ast.expr) -> str | None:
    """``cfg`` for ``cfg["a"].b[0]``: the variable an attribute or subscript store changes."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Rebinds(ast.NodeVisitor):
    """Names that a statement (re)binds or mutates in the cell's own (module) scope.

    Function and class bodies have their own scope and are not entered; comprehensions neither,
    except their first iterable, which runs in the enclosing scope.
    """

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.names.add(node.id)

    def _store_through(self, node: ast.Attribute | ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node)
            if root:
                self.names.add(root)
        self.generic_visit(node)

    visit_Attribute = _store_through
    visit_Subscript = _store_through

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
            root = _root_name(func.value)
            if root:
                self.names.add(root)
        self.generic_visit(node)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            self.names.add(alias.asname or alias.name.split(".")[0])

    visit_Import = _import
    visit_ImportFrom = _import

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.names.add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)

    visit_FunctionDef = _scope
    visit_AsyncFunctionDef = _scope
    visit_ClassDef = _scope

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp) -> None:
        self.visit(node.generators[0].iter)

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_DictComp = _comprehension
    visit_GeneratorExp = _comprehension

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def _capture(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    visit_MatchAs = _capture
    visit_MatchStar = _capture

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.names.add(node.rest)
        self.generic_visit(node)


def _rebound(node: ast.AST) -> set[str]:
    visitor = _Rebinds()
    visitor.visit(node)
    return visitor.names


def _names(target: ast.expr) -> set[str]:
    """Every variable an assignment target binds or changes."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_names(e) for e in target.elts))
    root = _root_name(target)
    return {root} if root else set()


def _bind_value(target: ast.expr, value: object, state: dict[str, object]) -> None:
    """Bind an already evaluated literal to a target, unpacking tuples and lists."""
    if isinstance(target, ast.Name):
        state[target.id] = value
    elif (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(value, (tuple, list))
        and len(value) == len(target.elts)
        and not any(isinstance(e, ast.Starred) for e in target.elts)
    ):
        for element, item in zip(target.elts, value, strict=True):
            _bind_value(element, item, state)
    else:  # starred unpacking, a length mismatch, attribute or subscript targets
        for name in _names(target):
            state[name] = _DROPPED


def _bind(target: ast.expr, node: ast.expr, state: dict[str, object]) -> None:
    value = _literal(node)
    if value is not _NOT_LITERAL:
        _bind_value(target, value, state)
    elif (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(node, (ast.Tuple, ast.List))
        and len(target.elts) == len(node.elts)
        and not any(isinstance(e, ast.Starred) for e in (*target.elts, *node.elts))
    ):  # `a, b = 1, f()`: a is still a literal
        for element, item in zip(target.elts, node.elts, strict=True):
            _bind(element, item, state)
    else:
        for name in _names(target):
            state[name] = _DROPPED


def parse(source: str) -> ast.Module | None:
    """The cell's ``ast``, or None for source that does not parse (IPython syntax such as ``!ls``
    that was not transformed, a NUL byte): parsing what is parseable would mean guessing."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: source with a NUL byte
        return None


def literal_params(source: str | ast.Module | None) -> dict[str, object]:
    """Params from the top-level literal assignments of a cell, in first-assignment order.

    Params: ``lr = 0.01``, ``a, b = 1, 2``, ``x = y = 3``, ``lr: float = 0.1``, ``-1e-3``,
    tuples, lists, dicts and sets of literals, ``None``, ``True``. The final value wins.

    Not params: names starting with ``_``; assignments inside functions, loops, ``if``/``with``
    bodies; attribute or subscript targets; augmented assignment; starred targets; non-literal
    values. A name whose literal is later made untrue (rebound to a non-literal, augmented, rebound
    in a block, mutated with ``.append``/``["k"] =``, deleted, imported over) is dropped.

    Source that does not parse (IPython syntax such as ``!ls`` or ``%time`` that was not
    transformed) yields ``{}``: parsing what is parseable would mean guessing.
    """
    tree = parse(source) if isinstance(source, str) else source
    if tree is None:
        return {}
    state: dict[str, object] = {}  # insertion order is first-assignment order
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for name in _rebound(stmt.value):  # `x = layers.pop()` mutates layers
                state[name] = _DROPPED
            for target in stmt.targets:
                _bind(target, stmt.value, state)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is None:  # `lr: float` declares, binds nothing
                continue
            for name in _rebound(stmt.value):
                state[name] = _DROPPED
            _bind(stmt.target, stmt.value, state)
        else:
            for name in _rebound(stmt):
                state[name] = _DROPPED
    return {
        name: value
        for name, value in state.items()
        if value is not _DROPPED and not name.startswith("_")
    }


def _arg_names(args: ast.arguments) -> set[str]:
    every = (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg)
    return {a.arg for a in every if a is not None}


class _Reads(ast.NodeVisitor):
    """Names a cell reads from its global namespace, in first-read order: loads at the top
    level, and loads in nested scopes (function, lambda and class bodies, comprehensions) of
    names that are not local there. Also the names it binds where ``_Rebinds`` does not look
    (``global`` in a function, ``:=`` in a comprehension)."""

    def __init__(self, local: frozenset[str] = frozenset()) -> None:
        self.local = local  # names local to the enclosing nested scopes
        self.names: dict[str, None] = {}  # an ordered set
        self.bound: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and node.id not in self.local:
            self.names.setdefault(node.id)

    def _nested(self, local: set[str], nodes: list[ast.AST]) -> None:
        inner = _Reads(self.local | local)
        inner.names, inner.bound = self.names, self.bound  # shared
        for node in nodes:
            inner.visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)  # defaults and annotations run when the function is defined
        if node.returns:
            self.visit(node.returns)
        local = _arg_names(node.args).union(*(_rebound(stmt) for stmt in node.body))
        self._nested(local, node.body)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._nested(_arg_names(node.args), [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(child)
        self._nested(set().union(*(_rebound(stmt) for stmt in node.body)), node.body)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp) -> None:
        first, *rest = node.generators
        self.visit(first.iter)  # runs in the enclosing scope
        local = set().union(*(_names(g.target) for g in node.generators))
        parts: list[ast.AST] = [*first.ifs]
        for g in rest:
            parts += [g.iter, *g.ifs]
        if isinstance(node, ast.DictComp):
            parts += [node.key, node.value]
        else:
            parts.append(node.elt)
        self._nested(local, parts)

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_DictComp = _comprehension
    visit_GeneratorExp = _comprehension

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.bound.add(node.target.id)  # a comprehension's `:=` binds in the cell's scope
        self.visit(node.value)

    def visit_Global(self, node: ast.Global) -> None:
        self.bound.update(node.names)  # a function that rebinds a name of the cell's scope


def names_read(source: str | ast.Module | None) -> list[str]:
    """The names a cell reads that earlier cells bound: loaded in the cell (at the top level,
    or in a function, lambda, class or comprehension where they are not local) and never bound
    or changed by the cell itself, in first-read order; names starting with ``_`` left out.

    A name the cell rebinds, deletes, augments or mutates (``cfg["lr"] = 0.2``,
    ``layers.append(8)``) anywhere at its top level, or that a function of the cell declares
    ``global``, is left out even when it is read first: its value when the cell starts is not
    the one the cell works with throughout. Builtins are among the names returned (``print``):
    the caller looks the names up in the user's namespace, where builtins are not.
    """
    tree = parse(source) if isinstance(source, str) else source
    if tree is None:
        return []
    reads = _Reads()
    reads.visit(tree)
    changed = _rebound(tree) | reads.bound
    return [n for n in reads.names if n not in changed and not n.startswith("_")]


def _format(value: object) -> str:
    # repr, except that sets are sorted: a set's repr follows hash order, which changes with
    # PYTHONHASHSEED, and the same config must give the same param string in every run.
    if isinstance(value, set):
        if not value:
            return "set()"
        try:
            items = [_format(v) for v in sorted(value)]  # type: ignore[type-var]
        except TypeError:  # mixed types: order by their text
            items = sorted(_format(v) for v in value)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_format(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_format(k)}: {_format(v)}" for k, v in value.items()) + "}"
    return repr(value)


def format_param(value: object) -> str:
    """A literal as an MLflow param string.

    A str as itself; anything else as its Python repr (``0.1`` -> ``"0.1"``, ``1e-05``,
    ``True``, ``None``, ``[64, 32]``, ``{'a': 1}``), so ``ast.literal_eval`` reads it back.
    """
    if isinstance(value, str):
        return value
    return _format(value)


def parse_param(text: str) -> object:
    """The inverse of ``format_param``: a param string read back as the Python literal it spells
    (``"0.01"`` -> ``0.01``, ``"[64, 32]"`` -> a list), anything else as the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def is_papermill_parameters_cell(source: str) -> bool:
    """True if ``source`` is the parameters cell papermill injected into a Python notebook.

    papermill's PythonTranslator writes ``# Parameters`` on the first line and one assignment
    per parameter after it (``name = value``, reformatted by black when black is installed).
    Only the default comment is recognised: a run with a custom ``comment=`` is not.
    """
    first, _, rest = source.partition("\n")
    if first.rstrip("\r") != "# Parameters":
        return False
    try:
        tree = ast.parse(rest)
    except (SyntaxError, ValueError):
        return False
    return all(
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        for stmt in tree.body
    )
