"""docs/architecture.md stays true to the code: the run-record table is record.CONTRACT, and every
subpackage the code has is described (and none that it has not)."""

from __future__ import annotations

import re
from pathlib import Path

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
    names = [f.name for f in record.CONTRACT]
    assert len(names) == len(set(names))


def test_the_doc_describes_each_subpackage_the_code_has():
    package = ROOT / "nbtrack"
    have = {p.parent.name for p in package.glob("*/__init__.py")}
    text = DOC.read_text()
    owns = _between(text, "## What each subpackage owns", "\n## ")
    described = set(re.findall(r"^\| `([a-z_]+)/` \|", owns, flags=re.M))
    assert described == have


def test_the_readme_points_to_it():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
