"""Where a drifted re-run's randomness may come from, read from the code with ``ast`` (never run).

A tracked cell's seed covers what the cell draws from the global generators of ``random``, numpy
and torch: nbtrack seeds them when the cell starts. It does not cover

- sources no seed reaches, wherever they are called: ``os.urandom``, ``random.SystemRandom``,
  ``secrets``, ``uuid4``, a generator made without a seed (``np.random.default_rng()``);
- draws made *before* the tracked cell, by earlier cells with no seed of their own: data built
  there (``np.random.normal(...)``, ``make_classification(...)`` without ``random_state``) differs
  from one kernel to the next, however the tracked cell is seeded.

``in_cell`` finds the first kind in the tracked cell; ``before_cell`` finds both kinds in the
cells before it, following the seeds set on the way (``np.random.seed(0)``, ``torch.manual_seed``,
an earlier tracked cell whose seed the re-run applies again). What the code calls in other
modules is not read: a cause found here is one written in the notebook.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

# Calls that draw from a source no seed covers (always), by their full dotted name.
_UNSEEDABLE = frozenset(
    {
        "os.urandom",
        "os.getrandom",
        "random.SystemRandom",
        "uuid.uuid1",
        "uuid.uuid4",
    }
)
# Constructors that seed themselves from the operating system when given no seed.
_UNSEEDED_WITHOUT_ARGS = frozenset(
    {
        "random.Random",
        "numpy.random.default_rng",
        "numpy.random.RandomState",
        "numpy.random.SeedSequence",
        "numpy.random.PCG64",
        "numpy.random.PCG64DXSM",
        "numpy.random.MT19937",
        "numpy.random.Philox",
        "numpy.random.SFC64",
    }
)
# Calls that seed a library's global generator (or several).
_SEEDERS = {
    "random.seed": {"random"},
    "numpy.random.seed": {"numpy"},
    "torch.manual_seed": {"torch"},
    "torch.random.manual_seed": {"torch"},
    "torch.cuda.manual_seed_all": set(),  # CUDA only: the CPU generator is not touched
    "lightning.seed_everything": {"random", "numpy", "torch"},
    "pytorch_lightning.seed_everything": {"random", "numpy", "torch"},
    "lightning.pytorch.seed_everything": {"random", "numpy", "torch"},
    "transformers.set_seed": {"random", "numpy", "torch"},
    "keras.utils.set_random_seed": {"random", "numpy"},
    "tensorflow.keras.utils.set_random_seed": {"random", "numpy"},
}
# numpy.random's functions that do not draw
_NUMPY_NOT_DRAWS = frozenset(
    {
        "seed",
        "get_state",
        "set_state",
        "default_rng",
        "RandomState",
        "Generator",
        "SeedSequence",
        "BitGenerator",
        "PCG64",
        "PCG64DXSM",
        "MT19937",
        "Philox",
        "SFC64",
    }
)
_RANDOM_NOT_DRAWS = frozenset({"seed", "getstate", "setstate", "Random", "SystemRandom"})
_TORCH_DRAWS = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "randperm",
        "rand_like",
        "randn_like",
        "randint_like",
        "normal",
        "bernoulli",
        "multinomial",
        "poisson",
    }
)
# scikit-learn's helpers that draw from numpy's global generator when not given random_state
_SKLEARN_DRAWS = re.compile(
    r"^(make_\w+|train_test_split|shuffle|resample|sample_without_replacement)$"
)
_CELL_MAGIC = re.compile(r"^\s*%%(\w+)")
_PYTHON_CELL_MAGICS = frozenset({"track", "time", "timeit", "capture", "prun", "debug"})
LIBRARIES = ("random", "numpy", "torch")
TEXT_CHARS = 60  # of a line quoted in a cause
DEFAULT_ALIASES = {"np": "numpy"}  # read as numpy even when the import is in a cell not read


@dataclass(frozen=True)
class Draw:
    """A call in the code that draws randomness the re-run's seed may not cover."""

    cell: int  # 1-based, among the code cells run before the tracked one; 0: the tracked cell
    line: int  # in the cell as written
    call: str  # as written: "np.random.normal", "make_classification"
    kind: str  # "unseedable" (no seed covers it) or "unseeded" (a global generator, not seeded)
    text: str = ""  # the line, stripped and cut short

    def describe(self) -> str:
        where = "the tracked cell" if self.cell == 0 else f"code cell {self.cell}"
        said = f" ({self.text})" if self.text else ""
        return f"{self.call}() in {where}, line {self.line}{said}"


def python_of(cell: str) -> str | None:
    """The cell's Python with IPython's syntax blanked line for line (line numbers kept); None for
    a cell whose body is not Python (``%%bash``) or that does not parse."""
    lines = cell.split("\n")
    m = _CELL_MAGIC.match(lines[0]) if lines else None
    if m:
        if m.group(1) not in _PYTHON_CELL_MAGICS:
            return None
        lines[0] = ""
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or re.match(r"^[\w.]+\s*=\s*[%!]", stripped):
            out.append(line[: len(line) - len(stripped)] + "pass")
        else:
            out.append(line)
    text = "\n".join(out)
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    return text


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class _Scan(ast.NodeVisitor):
    """One pass over code in execution order (roughly: statements in order, a call's arguments
    before the call), following imports and seeds; function and class bodies are read only when
    the code calls them at the top level."""

    def __init__(self, aliases: dict[str, str], seeded: set[str], cell: int, globals_too: bool):
        self.aliases = aliases  # local name -> full dotted name ("np" -> "numpy")
        self.seeded = seeded  # libraries whose global generator is seeded so far
        self.cell = cell
        self.globals_too = globals_too  # report unseeded draws from the global generators
        self.defs: dict[str, list[ast.stmt]] = {}
        self.draws: list[Draw] = []
        self._calling: set[str] = set()
        self._line = 0  # line of the top-level call being followed into a function
        self._lines: list[str] = []

    def scan(self, tree: ast.Module, source: str) -> None:
        self._lines = source.split("\n")
        for stmt in tree.body:
            self.visit(stmt)

    def _draw(self, line: int, call: str, kind: str) -> Draw:
        text = self._lines[line - 1].strip() if 0 < line <= len(self._lines) else ""
        text = text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"
        return Draw(self.cell, line, call, kind, text)

    # imports and definitions

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return
        for a in node.names:
            if a.name != "*":
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.defs[node.name] = node.body
        for d in node.decorator_list:
            self.visit(d)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        init = [
            s
            for s in node.body
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == "__init__"
        ]
        self.defs[node.name] = init[0].body if init else []

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return None

    # calls

    def _full(self, name: str) -> str:
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)  # arguments first: they run before the call
        written = _dotted(node.func)
        if written is None:
            return
        full = self._full(written)
        line = self._line or node.lineno
        if full in self.defs and full not in self._calling:  # a function defined in the cells
            self._calling.add(full)
            outer, self._line = self._line, line
            try:
                for stmt in self.defs[full]:
                    self.visit(stmt)
            finally:
                self._line = outer
                self._calling.discard(full)
            return
        seeds = _SEEDERS.get(full)
        if seeds is not None:
            self.seeded |= seeds
            return
        if _unseedable(full, node):
            self.draws.append(self._draw(line, written, "unseedable"))
            return
        if not self.globals_too:
            return
        library = _global_draw(full, node)
        if library and library not in self.seeded:
            self.draws.append(self._draw(line, written, "unseeded"))


def _has_seed_argument(node: ast.Call) -> bool:
    args = [a for a in node.args if not (isinstance(a, ast.Constant) and a.value is None)]
    kws = [
        k
        for k in node.keywords
        if k.arg in (None, "seed", "random_state", "x", "bit_generator", "entropy")
        and not (isinstance(k.value, ast.Constant) and k.value.value is None)
    ]
    return bool(args or kws)


def _unseedable(full: str, node: ast.Call) -> bool:
    if full in _UNSEEDABLE or full.startswith("secrets."):
        return True
    if full in _UNSEEDED_WITHOUT_ARGS:
        return not _has_seed_argument(node)
    return False


def _random_state_given(node: ast.Call) -> bool:
    return any(
        k.arg in ("random_state", None)
        and not (isinstance(k.value, ast.Constant) and k.value.value is None)
        for k in node.keywords
    )


def _global_draw(full: str, node: ast.Call) -> str | None:
    """The library whose global generator the call draws from, if it does."""
    parts = full.split(".")
    if parts[0] == "random" and len(parts) == 2 and parts[1] not in _RANDOM_NOT_DRAWS:
        return "random"
    if parts[:2] == ["numpy", "random"] and len(parts) == 3:
        return None if parts[2] in _NUMPY_NOT_DRAWS else "numpy"
    if parts[0] == "torch" and parts[-1] in _TORCH_DRAWS and len(parts) <= 3:
        return "torch"
    if parts[:3] == ["torch", "nn", "init"]:
        return "torch"
    if parts[0] == "sklearn" and _SKLEARN_DRAWS.match(parts[-1]):
        return None if _random_state_given(node) else "numpy"
    return None


def in_cell(cell: str) -> list[Draw]:
    """Calls in the tracked cell that draw from a source its seed does not cover."""
    text = python_of(cell)
    if text is None:
        return []
    scan = _Scan(dict(DEFAULT_ALIASES), set(LIBRARIES), 0, globals_too=False)
    scan.scan(ast.parse(text), cell)
    return scan.draws


def is_tracked(cell: str) -> bool:
    return cell.lstrip().startswith("%%track")


def _line_seed(cell: str) -> bool:
    first = cell.lstrip().split("\n", 1)[0]
    return bool(re.search(r"\s--seed[\s=]+-?\d", first))


def before_cell(
    earlier: Sequence[str], replayed: Collection[str] = (), sha: Callable[[str], str] | None = None
) -> list[Draw]:
    """Draws in the cells run before the tracked one that its seed does not cover: unseedable
    sources, and draws from a global generator no seed was set for by then.

    ``replayed``: sha256s of earlier tracked cells whose seed the re-run applies again (the
    original kernel's); an earlier tracked cell with ``--seed N`` is seeded too; any other tracked
    cell draws a fresh seed, so what it draws differs from the original's. ``sha``: a cell's
    sha256 as the re-run records it (``nbtrack.cell.sha256``)."""
    seeded: set[str] = set()
    scan = _Scan(dict(DEFAULT_ALIASES), seeded, 0, globals_too=True)
    draws: list[Draw] = []
    for n, source in enumerate(earlier, start=1):
        text = python_of(source)
        if text is None:
            continue
        if is_tracked(source):
            # nbtrack seeds every library as a tracked cell starts: with the seed of the original
            # (replayed, or --seed on its line), or with a fresh one
            seeded.clear()
            if _line_seed(source) or (sha is not None and sha(source) in replayed):
                seeded.update(LIBRARIES)
        scan.cell, scan.draws = n, []
        scan.scan(ast.parse(text), source)
        draws += scan.draws
    return _first_per_cell(draws)


def _first_per_cell(draws: Iterable[Draw]) -> list[Draw]:
    """Up to two draws per cell (the first ones): enough to find them."""
    out, per = [], {}
    for d in draws:
        per[d.cell] = per.get(d.cell, 0) + 1
        if per[d.cell] <= 2:
            out.append(d)
    return out


__all__ = ["Draw", "before_cell", "in_cell", "python_of"]
