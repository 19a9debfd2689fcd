"""The notebook snapshot: redacted, without saved widget state, re-read only when the file
changes."""

from __future__ import annotations

import hashlib
import json
import os

from nbtrack.capture.notebook import read_notebook

# Assembled at run time, as in test_redact, so this file holds no real-looking credential.
PASSWORD = "hunter2" + "-not-a-real-one"


def _write(path, source: str) -> bytes:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": [source],
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
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
    assert read_notebook(str(path), ["0.2"]).text.count("0.2") == 0


def test_a_missing_or_broken_notebook_is_none(tmp_path):
    assert read_notebook(str(tmp_path / "gone.ipynb")) is None
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert read_notebook(str(tmp_path / "bad.ipynb")) is None
