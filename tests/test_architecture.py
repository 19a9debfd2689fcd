"""docs/architecture.md stays true to the code: the run-record table is record.CONTRACT, and every
subpackage the code has is described (and none that it has not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nbtrack import record

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _between(text: str, begin: str, end: str) -> str:
    start = text.index(begin) + len(begin)
    return text[start : text.index(end, start)].strip("\n") + "\n"


def test_the_record_table_is_the_contract():
    table = _between(DOC.read_text(), "<!-- record:begin -->", "<!-- record:end -->")
    assert table == record.markdown_table(), (
        "docs/architecture.md's run-record table differs from nbtrack.record.CONTRACT: paste "
        "the output of `python -c 'from nbtrack import record; print(record.markdown_table())'`"
    )


def test_every_field_of_the_contract_is_named_once():
    named = [(f.name, f.kind) for f in record.CONTRACT]  # a version tag may share a param's name
    assert len(named) == len(set(named))


def test_the_doc_describes_each_subpackage_the_code_has():
    package = ROOT / "nbtrack"
    have = {p.parent.name for p in package.glob("*/__init__.py")}
    text = DOC.read_text()
    owns = _between(text, "## What each subpackage owns", "\n## ")
    described = set(re.findall(r"^\| `([a-z_]+)/` \|", owns, flags=re.M))
    assert described == have


def test_the_readme_points_to_it():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()


MODULE_LINES = 420  # "~400": a module longer than this says why at its top
CLASS_LINES = 250


def test_long_modules_say_why_and_classes_stay_small():
    import ast

    long_silent, long_classes = [], []
    for path in sorted((ROOT / "nbtrack").rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if text.count("\n") > MODULE_LINES and "# Over 400 lines:" not in text[:4000]:
            long_silent.append(str(rel))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno > CLASS_LINES:
                long_classes.append(f"{rel}:{node.name}")
    assert long_silent == [], "split these modules, or say why at the top ('# Over 400 lines: ...')"
    assert long_classes == [], "split these classes at their seams"


def test_tag_and_artifact_names_are_typed_only_in_the_record():
    # A run-record name ("nbtrack.pid", "mlflow.source.name", "nbtrack/cell.py") written as a
    # literal outside nbtrack.record (and store, which speaks MLflow) is a second spelling that
    # can drift. Module paths ("nbtrack.grids.worker") and API names ("nbtrack.log") are not.
    import nbtrack

    literal = re.compile(r"""["']((?:nbtrack|mlflow)[./][\w./-]+)["']""")
    stray = []
    for path in sorted((ROOT / "nbtrack").rglob("*.py")):
        rel = path.relative_to(ROOT / "nbtrack")
        if rel.parts[0] == "store" or rel.name == "record.py":
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for name in literal.findall(line):
                head = name.split(":")[0]
                if head.startswith("nbtrack.") and hasattr(nbtrack, head.split(".", 1)[1]):
                    continue  # an API name in a message
                if "/" not in head and _is_module(head):
                    continue  # a module (preloads, entry points)
                stray.append(f"nbtrack/{rel}:{lineno}: {name}")
    assert stray == [], "name these in nbtrack.record and import them"


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent that is not a package: a tag name, not a module
        return False


def test_broad_excepts_leave_a_trace():
    # nbtrack's own failures must not break a cell, but they must not vanish either: a broad
    # except logs (at debug, shown with NBTRACK_DEBUG=1), warns, re-raises or prints a traceback;
    # contextlib.suppress(Exception) is logs.failures_logged.
    import ast

    traced = ("log.", "_log.", "logger", "getLogger", "warn(", "raise", "print_exc", "_swallow(")
    silent = []
    for path in sorted((ROOT / "nbtrack").rglob("*.py")):
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            handler = isinstance(node, ast.ExceptHandler) and _broad(node.type)
            if handler and not any(t in ast.unparse(node) for t in traced):
                silent.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.With):
                for item in node.items:
                    call = item.context_expr
                    name = getattr(getattr(call, "func", None), "attr", None) or getattr(
                        getattr(call, "func", None), "id", None
                    )
                    if name == "suppress" and any(_broad(a) for a in call.args):
                        silent.append(f"{rel}:{node.lineno} suppress(Exception)")
    assert silent == [], "log what is swallowed (nbtrack.logs.failures_logged)"


def _broad(node) -> bool:
    import ast

    if node is None:
        return True
    names = node.elts if isinstance(node, ast.Tuple) else [node]
    return any(isinstance(n, ast.Name) and n.id in ("Exception", "BaseException") for n in names)


def test_only_the_redaction_pass_makes_redacted_text():
    # The store writes only Redacted text (nbtrack.redacted); a writer that made its own would
    # skip the pass. So Redacted(...) is called in capture/redaction.py alone.
    call = re.compile(r"\bRedacted\(")
    makers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "nbtrack").rglob("*.py")
        if call.search(path.read_text())
    )
    assert makers == ["nbtrack/capture/redaction.py", "nbtrack/redacted.py"]


def test_every_store_writer_refuses_text_that_skipped_the_pass(store):
    # The guard itself, on a real store: plain str never reaches MLflow.
    from nbtrack import store as st
    from nbtrack.capture.redaction import Redactor
    from nbtrack.redacted import NotRedacted

    r = Redactor()
    exp_id = st.experiment_id("guard")
    with pytest.raises(NotRedacted):
        st.create_run(exp_id, "plain name", {})
    run_id = st.create_run(exp_id, r.text("ok"), {})
    for call in (
        lambda: st.log_params_tags(run_id, params={r.text("p"): "plain"}),
        lambda: st.log_params_tags(run_id, tags={"plain-key": r.text("v")}),
        lambda: st.log_files(run_id, {r.text("a.txt"): "plain text"}),
        lambda: st.mark_killed(run_id, "plain reason"),
        lambda: st.start_run(exp_id, "plain name", {}),
    ):
        with pytest.raises(NotRedacted):
            call()
    assert st.get_run(run_id).params == {}
    st.log_params_tags(run_id, params=r.mapping({"p": "v", "db_password": "hunter2hunter2"}))
    assert st.get_run(run_id).params == {"p": "v", "db_password": "[REDACTED]"}
    st.terminate_run(run_id, "FINISHED")
