"""The registry against a real tracking server with MLflow's basic-auth app: a user with READ
permission on a model can see what is in production, and every move they try is refused with
one sentence ("you have read access to NAME; ask its owner for edit"), in the API and in the
panel, whose buttons are disabled and say why. No password reaches MLflow's tags."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest
from modelkit import model, predictions, train_run

import nbtrack
from nbtrack.errors import PermissionDenied

MODEL = "churn"
READER, READER_PASSWORD = "reader", "reader-" + secrets.token_urlsafe(12)
START_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """``mlflow server --app-name basic-auth`` on a free loopback port, with its own stores and
    a fresh admin password; stopped (its whole process group) at the end of the module."""
    base = tmp_path_factory.mktemp("auth-server")
    config = base / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{base}/auth.db\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Every request checks the password (scrypt, ~0.1 s); a test makes hundreds.
        "auth_cache_ttl_seconds = 300\n"
    )
    admin_password = secrets.token_urlsafe(18)  # MLflow has no default; 12+ characters
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBTRACK_"))}
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(config),
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
        MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
    )
    log = (base / "server.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{base}/mlflow.db",
        "--artifacts-destination",
        str(base / "artifacts"),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(
        command, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (base / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not start:\n{tail}")
            time.sleep(0.5)
        yield {"url": url, "admin_password": admin_password}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # uvicorn's workers, if any are left
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _as(monkeypatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


@pytest.fixture
def served(auth_server, monkeypatch, tmp_path):
    """nbtrack and MLflow pointed at the server, as its admin; requests fail fast."""
    url = auth_server["url"]
    for name in ("NBTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(name, url)
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    _as(monkeypatch, "admin", auth_server["admin_password"])
    mlflow.set_tracking_uri(url)
    return auth_server


# mlflow.server's auth client imports the server's app, which imports a deprecated starlette part
@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
def test_a_reader_sees_production_and_every_move_is_refused_in_one_sentence(served, monkeypatch):
    from mlflow.server import get_app_client

    url, admin_password = served["url"], served["admin_password"]
    # The admin registers two versions and promotes both in turn (so there is a rollback).
    for c in (0.01, 100.0):
        nbtrack.register(train_run("served", C=c), MODEL)
    nbtrack.promote(MODEL, 1, reason=f"first; pasted by mistake: {admin_password}")
    nbtrack.promote(MODEL, 2)
    assert nbtrack.production(MODEL).promoted_by == "admin"
    auth = get_app_client("basic-auth", tracking_uri=url)
    auth.create_user(READER, READER_PASSWORD)
    auth.grant_user_permission(READER, "registered_model", MODEL, "READ")

    _as(monkeypatch, READER, READER_PASSWORD)
    expected = f"you have read access to {MODEL}; ask its owner for edit"
    # reading is allowed: what is in production, and the model itself
    prod = nbtrack.production(MODEL)
    assert (prod.version, prod.previous) == ("2", "1")
    assert predictions(nbtrack.load(MODEL)) == predictions(model(100.0))
    # every move is refused, with one sentence
    for move in (
        lambda: nbtrack.promote(MODEL, 1),
        lambda: nbtrack.promote(MODEL, 1, stage="staging"),
        lambda: nbtrack.rollback(MODEL),
        lambda: nbtrack.archive(MODEL, 1),
    ):
        with pytest.raises(PermissionDenied) as err:
            move()
        assert str(err.value) == expected
    assert nbtrack.production(MODEL).version == "2"
    assert [r["who"] for r in nbtrack.audit(MODEL).to_dict("records")] == ["admin"] * 4

    # the panel disables every move and says why
    panel = nbtrack.registry(MODEL)
    assert panel.read_only == expected
    assert expected in panel.banner.value and expected in panel.static_html()
    buttons = [
        c
        for r in panel.rows.children[1:]
        for c in r.children
        if any(k.startswith(("nbtrack-promote", "nbtrack-archive")) for k in c._dom_classes)
    ]
    assert len(buttons) == 6
    assert all(b.disabled and b.tooltip == expected for b in buttons)
    assert panel.rollback_button.disabled and panel.rollback_button.tooltip == expected

    # no password reached MLflow
    _as(monkeypatch, "admin", admin_password)
    client = mlflow.MlflowClient(url)
    rm = client.get_registered_model(MODEL)
    versions = client.search_model_versions(f"name='{MODEL}'")
    runs = [client.get_run(mv.run_id) for mv in versions]
    everything = json.dumps(
        [
            rm.tags,
            rm.description,
            *(mv.tags for mv in versions),
            *(mv.description for mv in versions),
            *(r.data.tags for r in runs),
            *(r.data.params for r in runs),
        ]
    )
    assert admin_password not in everything and READER_PASSWORD not in everything
    assert "pasted by mistake: [REDACTED]" in everything
