"""The registry panel without a browser: what it lists, which buttons it enables and why, the
confirmation before each move, the result and the audit trail it shows, HTML escaping, and the
static picture in its output. (tests/browser/test_registry.py clicks it in a real JupyterLab.)"""

from __future__ import annotations

import pytest
from modelkit import train_run

import nbtrack
from nbtrack.widgets import registry_panel

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def digits(store):
    """Model "digits": version 1 in production, version 2 registered, version 3 from a FAILED run
    (with a hostile data hash, for the escaping)."""
    nbtrack.register(train_run(C=0.01), "digits")
    nbtrack.register(train_run(C=1.0), "digits")
    nbtrack.register(train_run(C=2.0, status="FAILED", params={"data_hash": HOSTILE}), "digits")
    nbtrack.promote("digits", 1)
    return "digits"


def row(panel, version: str):
    [r] = [r for r in panel.rows.children if f"nbtrack-version-{version}" in r._dom_classes]
    return r


def button(panel, version: str, cls: str):
    [b] = [c for c in row(panel, version).children if cls in getattr(c, "_dom_classes", ())]
    return b


def test_lists_models_and_versions_with_what_a_button_can_do(digits):
    panel = nbtrack.registry()
    assert panel.name is None and "digits" in panel.models_view.value
    assert panel.model_box.layout.display == "none"
    panel.picker.value = "digits"
    assert panel.name == "digits"
    assert [i.version for i in panel.infos] == ["3", "2", "1"]  # newest first
    prod = button(panel, "1", "nbtrack-promote-production")
    assert prod.disabled and prod.tooltip == "already in production"
    archive = button(panel, "1", "nbtrack-archive")
    assert archive.disabled and "promote another version" in archive.tooltip
    assert not button(panel, "2", "nbtrack-promote-production").disabled
    assert panel.rollback_button.disabled
    assert panel.rollback_button.tooltip == "no previous production version to roll back to"
    assert "production <b class='nbtrack-production'>1</b>" in panel.summary.value


def test_promote_asks_first_and_shows_the_result_and_the_trail(digits, client):
    panel = nbtrack.registry("digits")
    button(panel, "2", "nbtrack-promote-production").click()
    assert panel.confirm_box.layout.display is None
    assert "Promote version <b>2</b> of <b>digits</b> to production?" in panel.question.value
    assert "Version 1 leaves production and is archived" in panel.question.value
    # nothing moves before the confirmation; cancel leaves everything as it is
    panel.cancel_button.click()
    assert panel.confirm_box.layout.display == "none"
    assert str(client.get_model_version_by_alias("digits", "production").version) == "1"

    button(panel, "2", "nbtrack-promote-production").click()
    panel.reason.value = f"better, {HOSTILE}"
    panel.confirm_button.click()
    assert str(client.get_model_version_by_alias("digits", "production").version) == "2"
    assert "version 2 of digits is now in production (was version 1)" in panel.result.value
    assert "nbtrack-ok" in panel.result.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in panel.audit_view.value
    assert HOSTILE not in panel.audit_view.value
    # the panel follows: version 2's button is now the disabled one, and roll back is possible
    assert button(panel, "2", "nbtrack-promote-production").disabled
    assert not panel.rollback_button.disabled
    assert "put version 1 back in production" in panel.rollback_button.tooltip

    panel.rollback_button.click()
    assert "put version <b>1</b> back in production, replacing version 2" in panel.question.value
    panel.confirm("alert")
    assert str(client.get_model_version_by_alias("digits", "production").version) == "1"
    assert "version 1 of digits is now in production (was version 2)" in panel.result.value
    assert [r["action"] for r in panel.records][-2:] == ["promote", "rollback"]
    assert not panel.errors


def test_a_failed_runs_version_is_promoted_only_after_a_warning(digits, client):
    panel = nbtrack.registry("digits")
    b = button(panel, "3", "nbtrack-promote-staging")
    assert "its run FAILED" in b.tooltip
    b.click()
    assert "Its run FAILED: confirming promotes it anyway." in panel.question.value
    panel.confirm()
    assert str(client.get_model_version_by_alias("digits", "staging").version) == "3"
    assert button(panel, "3", "nbtrack-promote-staging").disabled


def test_archive_from_the_panel(digits, client):
    panel = nbtrack.registry("digits")
    button(panel, "2", "nbtrack-archive").click()
    panel.confirm()
    assert "version 2 of digits is archived" in panel.result.value
    assert button(panel, "2", "nbtrack-archive").tooltip == "already archived"


def test_a_refused_move_is_one_sentence_in_the_panel(digits, client):
    panel = nbtrack.registry("digits")
    button(panel, "2", "nbtrack-promote-production").click()
    nbtrack.archive("digits", 2)  # someone else moves first...
    client.delete_model_version("digits", "2")  # ... and deletes the version
    panel.confirm()
    assert "nbtrack-error" in panel.result.value
    assert "no version 2 of model" in panel.result.value
    assert not panel.errors


def test_everything_shown_is_escaped_and_the_output_has_a_static_picture(digits):
    panel = nbtrack.registry("digits")
    assert HOSTILE not in panel.static_html()
    assert HOSTILE[:10] not in "".join(
        c.value for r in panel.rows.children for c in r.children if hasattr(c, "value")
    )
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == (
        "<nbtrack registry: model digits, 3 versions shown, production version 1>"
    )
    page = bundle["text/html"]
    assert page.startswith("<div class='nbtrack-registry'>")
    assert "nbtrack-registry-versions" in page and "nbtrack-registry-audit" in page


def test_unknown_model(store):
    with pytest.raises(nbtrack.errors.NotFound, match="no registered model 'nope'"):
        nbtrack.registry("nope")


def test_the_source_run_opens_the_comparison_panel_or_says_where_it_is(digits, monkeypatch):
    panel = nbtrack.registry("digits")
    info = next(i for i in panel.infos if i.version == "2")
    calls = []
    monkeypatch.setattr(nbtrack, "compare", lambda *a, **k: calls.append((a, k)) or "panel")
    assert panel.run_content(info) == "panel"
    assert calls == [(("registry",), {"select": [info.run_id]})]

    monkeypatch.delattr(nbtrack, "compare")  # the comparison panel is not there: degrade
    text = panel.run_content(info)
    assert info.run_id in text and "experiment <b>registry</b>" in text
    assert registry_panel.RegistryPanel is type(panel)
