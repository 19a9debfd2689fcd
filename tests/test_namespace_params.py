"""Params the cell reads from the namespace, dicts as dotted keys, the cap: the pure parts
(capture.namespace, tracking.params.asked on a plain dict). test_shell.py has them in a shell."""

from __future__ import annotations

import enum
import json
import math

import pytest

from nbtrack.capture.namespace import flatten, flattenable, simple_values
from nbtrack.tracking import params as cellparams
from nbtrack.tracking.tracker import RunSpec, Source


class Colour(enum.IntEnum):
    RED = 1


class Float(float):
    pass


def test_simple_values_are_params():
    ns = {
        "n": 500,
        "lr": 0.1,
        "big": 10**200,
        "nan": math.nan,
        "on": True,
        "opt": "adam",
        "nothing": None,
        "layers": [64, 32],
        "shape": (28, 28),
        "mixed": [1, "a", None, 2.5],
    }
    assert simple_values(list(ns), ns) == ns


@pytest.mark.parametrize(
    "value",
    [
        "x" * 251,  # a long text is data
        list(range(11)),  # so is a long list
        [[1, 2], [3]],  # nested lists
        ["y" * 200, "z" * 100],  # a list whose text is long
        10**300,
        {1, 2},
        b"bytes",
        Colour.RED,  # subclasses of int and float: their repr is not a literal
        Float(0.5),
        math,  # a module
        print,
        len,
        lambda: 1,
        Colour,  # a class
        object(),
        {},
        {"model": object()},  # a dict without a simple leaf
        {1: "a"},
        {f"k{i}": i for i in range(101)},  # a dict of more than 100 leaves is data
        {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},  # nested deeper than 5
    ],
)
def test_other_values_are_not_params(value):
    assert simple_values(["v"], {"v": value}) == {}


def test_private_ipython_and_unbound_names_are_left_out():
    ns = {"_x": 1, "In": ["a"], "Out": {}, "exit": 1, "quit": 1, "get_ipython": 1, "y": 2}
    assert simple_values([*ns, "print", "missing"], ns) == {"y": 2}


def test_a_dict_is_pruned_to_its_simple_leaves():
    value = {
        "lr": 0.1,
        "model": {"depth": 3, "net": object(), "empty": {}},
        "bad key!": 1,
        2: "two",
        "layers": [8, 4],
    }
    assert simple_values(["cfg"], {"cfg": value}) == {
        "cfg": {"lr": 0.1, "model": {"depth": 3}, "layers": [8, 4]}
    }


def test_the_namespace_is_looked_up_not_walked():
    class Loud(dict):
        def __iter__(self):
            raise AssertionError("the namespace was walked")

        def items(self):
            raise AssertionError("the namespace was walked")

    ns = Loud(a=1, b=2)
    assert simple_values(["a"], ns) == {"a": 1}


def test_flatten_gives_dotted_paths():
    value = {"lr": 0.1, "model": {"depth": 3, "act": {"name": "relu"}}, "empty": {}, "odd": {1: 2}}
    assert flattenable(value) and not flattenable({}) and not flattenable({"a.b": 1})
    assert list(flatten(value)) == [
        (("lr",), 0.1),
        (("model", "depth"), 3),
        (("model", "act", "name"), "relu"),
        (("empty",), {}),
        (("odd",), {1: 2}),
    ]


# --- which key, which source, the cap -----------------------------------------------------------


def _asked(code: str, ns: dict | None = None, earlier=(), **spec) -> cellparams.Found:
    return cellparams.asked(
        RunSpec(**spec), Source("NOTEBOOK", None, code, namespace=ns, earlier=earlier), None
    )


def test_a_name_read_from_the_namespace_is_a_param():
    found = _asked("model = fit(n_estimators, opt)", {"n_estimators": 500, "opt": "adam"})
    assert found.params == {"n_estimators": "500", "opt": "adam"}
    assert found.sources == {"n_estimators": "namespace", "opt": "namespace"}
    assert found.dropped is None


def test_dicts_are_flattened_to_their_keys_or_under_their_name_when_they_clash():
    code = (
        "params = {'n_estimators': 500, 'lr': 0.1, 'model': {'depth': 3}}\nfit(lr, cfg, **params)\n"
    )
    ns = {"lr": 0.3, "cfg": {"lr": 0.2, "random_seed": 4, "seed": 1}}
    found = _asked(code, ns, params={"seed": "9"})
    assert found.params == {
        "n_estimators": "500",  # the dict's key: nothing else has it
        "model.depth": "3",  # nested: dotted
        "params.lr": "0.1",  # three params say lr: each dict's under its name
        "lr": "0.3",
        "cfg.lr": "0.2",
        "cfg.random_seed": "4",  # nbtrack's own param keeps its key
        "cfg.seed": "1",  # so does a -p flag's
        "seed": "9",
    }
    assert found.sources["n_estimators"] == "cell" and found.sources["cfg.lr"] == "namespace"


def test_a_dict_the_cell_assigns_is_flattened_unless_it_cannot_be():
    found = _asked("a = {'x': 1}\nb = {}\nc = {1: 'one'}\nd = {'k': {2: 3}}")
    assert found.params == {"x": "1", "b": "{}", "c": "{1: 'one'}", "k": "{2: 3}"}


def test_precedence_flag_cell_papermill_namespace():
    earlier = ["# Parameters\nalpha = 0.5\nbeta = 2\n"]
    ns = {"alpha": 0.7, "beta": 3, "gamma": 4, "delta": 5}
    found = _asked("beta = 1\nfit(alpha, beta, gamma, delta)", ns, earlier, params={"gamma": "x"})
    assert found.params == {"alpha": "0.5", "beta": "1", "gamma": "x", "delta": "5"}
    assert found.sources == {
        "alpha": "papermill",
        "beta": "cell",
        "gamma": "flag",
        "delta": "namespace",
    }


def test_papermill_dicts_stay_one_param():
    # a re-run or a grid injects a papermill parameter back by its name
    found = _asked("fit(cfg)", {"cfg": {"a": 9}}, ["# Parameters\ncfg = {'a': 1}\n"])
    assert found.params == {"cfg": "{'a': 1}"} and found.sources["cfg"] == "papermill"


def test_at_most_100_found_params_the_namespaces_dropped_first():
    ns = {f"c{i}": i for i in range(150)}
    literals = "\n".join(f"v{i} = {i}" for i in range(30))
    code = f"{literals}\ntotal = sum([{', '.join(ns)}])\n"
    found = _asked(code, ns, params={"p": "1"})
    assert len([k for k in found.params if k != "p"]) == 100
    assert all(f"v{i}" in found.params for i in range(30))  # the cell's are kept
    assert [f"c{i}" in found.params for i in range(150)] == [True] * 70 + [False] * 80
    assert found.dropped["count"] == 80 and "100" in found.dropped["reason"]
    note = json.loads(cellparams.params_json(found.params, found.sources, {}, found.dropped))
    assert note[cellparams.DROPPED]["count"] == 80


def test_the_cap_drops_a_dict_whole():
    ns = {f"c{i}": i for i in range(99)} | {"cfg": {"a": 1, "b": 2}}
    found = _asked(f"fit({', '.join(ns)})", ns)
    assert "cfg" not in str(list(found.params)) and "a" not in found.params
    assert len(found.params) == 99 and found.dropped["count"] == 2


def test_the_cells_own_params_are_never_capped():
    literals = "\n".join(f"v{i} = {i}" for i in range(120))
    found = _asked(f"{literals}\nfit(n)", {"n": 1})
    assert len(found.params) == 120 and found.dropped["count"] == 1


def test_no_auto_params_turns_it_all_off():
    found = _asked("params = {'a': 1}\nfit(n)", {"n": 1}, auto_params=False)
    assert found.params == {} and found.dropped is None


def test_no_namespace_no_namespace_params():
    assert _asked("fit(n)").params == {}  # scripts: nbtrack.run() has no user namespace


def test_the_cells_source_types_survive_a_namespace_that_misbehaves():
    class Broken(dict):
        def get(self, *args):
            raise RuntimeError("broken namespace")

    found = _asked("lr = 0.1\nfit(n)", Broken(n=1))
    assert found.params == {"lr": "0.1"}
