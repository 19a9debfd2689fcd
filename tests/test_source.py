"""Params from cell source: what becomes a param, what does not, and how values are written."""

from __future__ import annotations

import ast

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from nbtrack.capture.source import (
    format_param,
    is_papermill_parameters_cell,
    literal_params,
    names_read,
    parse,
)

# --- literal_params -----------------------------------------------------------------------------


def test_literal_assignments_become_params_in_first_assignment_order():
    source = """
lr = 0.01
layers = [64, 32]
opt = "sgd"
a, b = 1, 2
x = y = 3
momentum: float = 0.9
eps = -1e-3
shape = (28, 28)
cfg = {"dropout": 0.1, "sizes": [1, 2]}
classes = {"cat", "dog"}
scheduler = None
shuffle = True
"""
    expected = {
        "lr": 0.01,
        "layers": [64, 32],
        "opt": "sgd",
        "a": 1,
        "b": 2,
        "x": 3,
        "y": 3,
        "momentum": 0.9,
        "eps": -0.001,
        "shape": (28, 28),
        "cfg": {"dropout": 0.1, "sizes": [1, 2]},
        "classes": {"cat", "dog"},
        "scheduler": None,
        "shuffle": True,
    }
    params = literal_params(source)
    assert params == expected
    assert list(params) == list(expected)  # dict equality ignores order


def test_non_literals_and_non_top_level_are_not_params():
    source = """
import torch
model = Net()
n = len(x)
cfg.lr = 0.1
d["k"] = 1
_hidden = 5
__dunder = 6
first, *rest = 1, 2, 3
total = 1 + 2
for epoch in range(3):
    inner_loop = 1
if True:
    inner_if = 2
with open(__file__) as fh:
    inner_with = 3
def f():
    inner_def = 4
class C:
    inner_class = 5
placeholder = ...
"""
    assert literal_params(source) == {}


def test_the_final_value_wins_and_keeps_its_first_position():
    assert literal_params("lr = 0.1\nbs = 32\nlr = 0.2\n") == {"lr": 0.2, "bs": 32}
    assert list(literal_params("lr = 0.1\nbs = 32\nlr = 0.2\n")) == ["lr", "bs"]


def test_a_name_reassigned_to_a_non_literal_is_dropped():
    assert literal_params("lr = 0.1\nlr = schedule(lr)\nbs = 2") == {"bs": 2}
    # ... but a literal again after that is the final value, and true
    assert literal_params("lr = 0.1\nlr = f()\nlr = 0.3") == {"lr": 0.3}


@pytest.mark.parametrize(
    "later",
    [
        "lr *= 2",  # augmented assignment
        "for lr in (0.1, 0.2):\n    pass",  # a loop target
        "if tune:\n    lr = 0.5",  # rebound in a block
        "lr, other = f()",
        "(lr := 0.7)",
        "del lr",
        "import lr",
        "def lr():\n    pass",
        "with ctx() as lr:\n    pass",
        "try:\n    pass\nexcept E as lr:\n    pass",
    ],
)
def test_a_name_whose_value_becomes_unknown_is_dropped(later):
    assert literal_params(f"lr = 0.1\nbs = 2\n{later}\n") == {"bs": 2}


@pytest.mark.parametrize(
    "mutation",
    ["layers.append(16)", "layers[0] = 128", "layers.sort()", "x = layers.pop()", "del layers[0]"],
)
def test_a_mutated_container_is_dropped(mutation):
    assert literal_params(f"layers = [64, 32]\nbs = 2\n{mutation}\n") == {"bs": 2}


def test_reading_a_param_does_not_drop_it():
    source = "lr = 0.1\nlayers = [64]\nopt = SGD(lr=lr)\nprint(layers, len(layers))\n"
    assert literal_params(source) == {"lr": 0.1, "layers": [64]}


def test_a_loop_variable_in_a_comprehension_does_not_drop_a_param():
    source = "x = 1\nsquares = [x * x for x in range(3)]\n"
    assert literal_params(source) == {"x": 1}


def test_mixed_tuple_unpacking_keeps_the_literal_half():
    assert literal_params("a, b = 1, f()") == {"a": 1}
    assert literal_params("(a, b), c = (1, 2), 3") == {"a": 1, "b": 2, "c": 3}
    assert literal_params("a, b = (1, 2, 3)") == {}  # would raise at run time: nothing is true


def test_a_bare_annotation_binds_nothing():
    assert literal_params("lr = 0.1\nlr: float\n") == {"lr": 0.1}


@pytest.mark.parametrize("source", ["!ls\nlr = 0.1", "%time lr = 0.1", "lr = 0.1\n%%bash", "lr ="])
def test_source_that_does_not_parse_gives_no_params(source):
    assert literal_params(source) == {}


def test_ipython_transformed_source_parses():
    # IPython's own transform of `!ls` (what `In[n]` holds) is plain Python.
    source = "get_ipython().system('ls')\nlr = 0.1\n"
    assert literal_params(source) == {"lr": 0.1}


def test_literal_params_takes_a_parsed_tree_too():
    assert literal_params(parse("lr = 0.1")) == {"lr": 0.1}
    assert parse("!ls") is None and literal_params(None) == {}


# --- names_read ---------------------------------------------------------------------------------


def test_names_the_cell_reads_in_first_read_order():
    source = "model = fit(X, n_estimators=n_estimators, lr=lr)\nprint(model, lr, depth)\n"
    assert names_read(source) == ["fit", "X", "n_estimators", "lr", "print", "depth"]


@pytest.mark.parametrize(
    "source",
    [
        "lr = 0.1\nfit(lr)",  # bound by the cell before it is read
        "fit(lr)\nlr = 0.2",  # read, then bound: the cell works with two values
        "lr = lr * 2",
        "lr += 1",
        "for lr in grid:\n    fit(lr)",
        "cfg['lr'] = 0.2\nfit(cfg)",  # mutated: its value at the start is not the one used
        "layers.append(8)\nfit(layers)",
        "del lr",
        "import lr",
        "with open(p) as lr:\n    fit(lr)",
        "[(lr := x) for x in xs]\nfit(lr)",  # := in a comprehension binds in the cell's scope
        "def f():\n    global lr\n    lr = 2\nf()\nfit(lr)",
        "try:\n    pass\nexcept E as lr:\n    fit(lr)",
    ],
)
def test_a_name_the_cell_binds_or_changes_is_not_read_from_the_namespace(source):
    assert "lr" not in names_read(source)


def test_names_local_to_nested_scopes_are_not_reads():
    source = """
def train(a, *rest, b=default_b, **kw):
    c = a + b
    return c * scale
loss = lambda y: y - offset
squares = [x * x for x in xs if x > threshold]
table = {k: v for k, v in pairs}
class Model:
    depth = 3
    width = depth * factor
"""
    assert names_read(source) == [
        "default_b",
        "scale",
        "offset",
        "xs",
        "threshold",
        "pairs",
        "factor",
    ]


def test_names_read_leaves_out_private_names_and_unparseable_cells():
    assert names_read("fit(_x, __y, z)") == ["fit", "z"]
    assert names_read("!ls $path") == []
    assert names_read(parse("fit(n)")) == ["fit", "n"]


# --- format_param -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("sgd", "sgd"),
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        (-0.001, "-0.001"),
        (3.0, "3.0"),
        (64, "64"),
        (True, "True"),
        (False, "False"),
        (None, "None"),
        ([64, 32], "[64, 32]"),
        ((1,), "(1,)"),
        ((28, 28), "(28, 28)"),
        ({"opt": "adam", "lr": 0.001}, "{'opt': 'adam', 'lr': 0.001}"),
        ({3, 1, 2}, "{1, 2, 3}"),
        (set(), "set()"),
        ([{"b", "a"}], "[{'a', 'b'}]"),
    ],
)
def test_format_param(value, text):
    assert format_param(value) == text


@pytest.mark.parametrize(
    "value",
    [0.1, 1e-05, 2.5e300, -7, True, None, [1, [2.5, "x"]], (1, "a"), {"k": (1, None)}, {"z", "a"}],
)
def test_format_param_round_trips_through_literal_eval(value):
    assert ast.literal_eval(format_param(value)) == value


def test_format_param_of_a_set_does_not_depend_on_hash_order():
    # Strings hash differently in every interpreter run; the param string must not.
    words = {"delta", "alpha", "charlie", "bravo"}
    assert format_param(words) == "{'alpha', 'bravo', 'charlie', 'delta'}"
    assert format_param({1, "a"}) == "{'a', 1}"  # mixed types: sorted by their text


def test_params_from_source_round_trip():
    params = literal_params("lr = 1e-3\nlayers = [64, 32]\nopt = 'sgd'\nuse_bn = False\n")
    assert {k: format_param(v) for k, v in params.items()} == {
        "lr": "0.001",
        "layers": "[64, 32]",
        "opt": "sgd",
        "use_bn": "False",
    }


# --- papermill ----------------------------------------------------------------------------------


def _injected_source(tmp_path, parameters: dict) -> str:
    """The source of the cell papermill itself injects into a notebook file."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    params_cell = nbformat.v4.new_code_cell("lr = 0.1\nepochs = 10")
    params_cell.metadata["tags"] = ["parameters"]
    nb.cells = [params_cell, nbformat.v4.new_code_cell("print(lr)")]
    path = tmp_path / "train.ipynb"
    nbformat.write(nb, path)
    nb = load_notebook_node(str(path))  # papermill's own reader, as `papermill.execute` uses
    nb = parameterize_notebook(nb, parameters, kernel_name="python3", language="python")
    (cell,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    return cell.source


def test_papermill_injected_cell_is_recognised(tmp_path):
    source = _injected_source(
        tmp_path, {"lr": 0.01, "opt": "adam", "layers": [8, 4], "extra": {"a": None}}
    )
    assert source.startswith("# Parameters\n")
    assert is_papermill_parameters_cell(source)
    assert literal_params(source) == {
        "lr": 0.01,
        "opt": "adam",
        "layers": [8, 4],
        "extra": {"a": None},
    }


def test_papermill_injected_cell_without_parameters_is_recognised(tmp_path):
    assert is_papermill_parameters_cell(_injected_source(tmp_path, {}))


@pytest.mark.parametrize(
    "source",
    [
        "lr = 0.1\nepochs = 10",  # the notebook's own `parameters` cell
        "# parameters\nlr = 0.1",
        "# Parameters for the model\nlr = 0.1",
        "\n# Parameters\nlr = 0.1",
        "# Parameters\nlr = 0.1\ntrain(lr)",
        "# Parameters\n!ls",
    ],
)
def test_other_cells_are_not_papermill_parameters(source):
    assert not is_papermill_parameters_cell(source)
