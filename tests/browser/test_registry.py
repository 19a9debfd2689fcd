"""The registry panel in a real JupyterLab: a person promotes version 2 to production, confirms,
sees the alias move in the panel (and MLflow agrees), rolls back and sees version 1 back; a
hostile string from a run shows as text."""

from __future__ import annotations

from modelkit import train_run
from playwright.sync_api import expect

import nbtrack

MODEL = "browser-model"
HOSTILE = "<img src=x onerror=alert(1)>"


def _production(client) -> str:
    return str(client.get_model_version_by_alias(MODEL, "production").version)


def test_promote_confirm_and_roll_back(lab, store, client):
    dialogs: list[str] = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for c, params in ((0.01, {}), (100.0, {}), (1.0, {"data_hash": HOSTILE})):
        nbtrack.register(train_run("browser-registry", C=c, params=params), MODEL)
    nbtrack.promote(MODEL, 1)

    cells = [
        # The lab server does not pass NBTRACK_*/MLFLOW_* on to kernels: the notebook names it.
        f"%env NBTRACK_TRACKING_URI={store}\nimport nbtrack",
        f"panel = nbtrack.registry({MODEL!r})\npanel",
    ]
    lab.open_notebook(lab.write_notebook("registry.ipynb", cells))
    lab.run_all()
    out = lab.cell_output(1)
    production = out.locator(".nbtrack-production")
    expect(production).to_have_text("1")
    row2 = out.locator(".nbtrack-version-2")
    expect(row2).to_be_visible()
    lab.screenshot("opened")

    # Promote version 2: the panel asks first.
    row2.get_by_role("button", name="promote to production").click()
    confirm = out.locator(".nbtrack-confirm-box")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(f"Promote version 2 of {MODEL} to production?")
    expect(confirm).to_contain_text("Version 1 leaves production and is archived")
    confirm.get_by_placeholder("reason (optional; goes to the audit trail)").fill("better recall")
    lab.screenshot("confirm")
    confirm.get_by_role("button", name="confirm: promote 2 to production", exact=True).click()

    result = out.locator(".nbtrack-result")
    expect(result).to_contain_text(f"version 2 of {MODEL} is now in production (was version 1)")
    expect(production).to_have_text("2")
    expect(row2).to_contain_text("production")
    expect(row2.get_by_role("button", name="promote to production")).to_be_disabled()
    expect(out.locator(".nbtrack-version-1")).to_contain_text("previous_production")
    expect(confirm).to_be_hidden()
    assert _production(client) == "2"
    expect(out.locator(".nbtrack-audit")).to_contain_text("better recall")
    lab.screenshot("promoted")

    # Roll back: version 1 is back, in the panel and in MLflow.
    out.get_by_role("button", name="roll back", exact=True).click()
    expect(confirm).to_contain_text(f"Roll back {MODEL}: put version 1 back in production")
    confirm.get_by_role("button", name="confirm: roll back", exact=True).click()
    expect(result).to_contain_text(f"version 1 of {MODEL} is now in production (was version 2)")
    expect(production).to_have_text("1")
    expect(out.locator(".nbtrack-version-1")).to_contain_text("production")
    assert _production(client) == "1"
    expect(out.locator(".nbtrack-audit")).to_contain_text("rollback")
    lab.screenshot("rolled-back")

    # The hostile data hash of version 3 is text, not markup.
    expect(out.locator(".nbtrack-version-3")).to_contain_text("<img src=x")
    assert out.locator("img").count() == 0 and not dialogs
