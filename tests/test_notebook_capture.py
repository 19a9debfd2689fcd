"""The notebook snapshot: redacted, without saved widget state, re-read only when the file
changes."""

from __future__ import annotations

import hashlib
import json
import os

from nbtrack.capture.notebook import read_notebook
from nbtrack.capture.redaction import Redactor

# Assembled at run time, as in test_redact, so this file holds no real-looking credential.
PASSWORD = "hunter2" + "-not-a-real-one"


def _write(path, source: str, widgets: bool = True, outputs: list | None = None) -> bytes:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": [source],
                "outputs": outputs or [],
                "execution_count": None,
            }
        ],
        "metadata": (
            {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}}
            if widgets
            else {}
        ),
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    raw = json.dumps(nb).encode()
    path.write_bytes(raw)
    return raw


def test_snapshot_is_redacted_hashed_and_drops_widget_state(tmp_path):
    path = tmp_path / "nb.ipynb"
    raw = _write(path, f"url = 'https://ada:{PASSWORD}@example.org/data'\nlr = 0.1\n")
    found = read_notebook(str(path))
    assert found.sha256 == hashlib.sha256(raw).hexdigest()  # of the file as the user has it
    assert PASSWORD not in found.text
    assert "lr = 0.1" in found.parameters
    assert "widgets" not in json.loads(found.text)["metadata"]
    assert found.snapshot == "redacted, widget state removed"


def test_a_snapshot_with_nothing_to_change_is_the_saved_file_byte_for_byte(tmp_path):
    path = tmp_path / "nb.ipynb"
    # nbformat's own layout (indent 1, a trailing newline) or any other: the bytes are kept
    raw = _write(path, "lr = 0.1\n", widgets=False, outputs=[_stream("loss 0.5\n")])
    found = read_notebook(str(path))
    assert found.snapshot == "exact"
    assert found.text.encode() == raw
    assert hashlib.sha256(found.text.encode()).hexdigest() == found.sha256


def test_the_snapshot_says_what_was_changed(tmp_path):
    path = tmp_path / "nb.ipynb"
    _write(path, "lr = 0.1\n")
    assert read_notebook(str(path)).snapshot == "widget state removed"
    _write(path, "lr = 0.1\n", widgets=False, outputs=[_stream(f"password={PASSWORD}\n")])
    os.utime(path, ns=(2, 2))
    found = read_notebook(str(path))
    assert found.snapshot == "redacted" and PASSWORD not in found.text


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": [text]}


def test_an_unchanged_file_is_not_read_again_and_a_changed_one_is(tmp_path):
    path = tmp_path / "nb.ipynb"
    _write(path, "lr = 0.1\n")
    first = read_notebook(str(path))
    assert read_notebook(str(path)) is first
    _write(path, "lr = 0.2\n")  # same size: mtime and the bytes' hash must still tell
    os.utime(path, ns=(1, 1))
    second = read_notebook(str(path))
    assert second is not first and "lr = 0.2" in second.text
    # The secrets to redact are part of what the snapshot depends on.
    assert read_notebook(str(path), Redactor(["0.2"])).text.count("0.2") == 0


def test_a_missing_or_broken_notebook_is_none(tmp_path):
    assert read_notebook(str(tmp_path / "gone.ipynb")) is None
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert read_notebook(str(tmp_path / "bad.ipynb")) is None


def test_the_markdown_right_above_a_code_cell_is_its_note(tmp_path):
    from nbtrack.capture.notebook import cell_sha256

    tracked = "%%track -e notes\nlr = 0.1\n"
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Intro\nnot this one"},
            {"cell_type": "code", "metadata": {}, "source": "import x", "outputs": []},
            {"cell_type": "markdown", "metadata": {}, "source": "## Baseline\nlr 0.1, as in"},
            {"cell_type": "markdown", "metadata": {}, "source": f"the paper; token {PASSWORD}"},
            {"cell_type": "code", "metadata": {}, "source": tracked, "outputs": []},
            {"cell_type": "code", "metadata": {}, "source": "y = 2", "outputs": []},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    found = read_notebook(str(path), Redactor([PASSWORD]))
    note = found.note_for(tracked)
    assert note.startswith("## Baseline\nlr 0.1, as in\n\nthe paper; token ")
    assert PASSWORD not in note and "Intro" not in note
    assert found.note_for("y = 2") is None  # no markdown right above it
    assert found.note_for("edited since the save") is None
    assert set(found.notes) == {cell_sha256(tracked), cell_sha256("import x")}
