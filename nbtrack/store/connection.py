"""Where the store is, the MLflow client for it, and MLflow's errors translated into nbtrack's."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nbtrack import settings
from nbtrack.errors import StoreError
from nbtrack.store import creation, outages

# MLflow's batch limits (mlflow.utils.validation): at most 100 params+tags and 1000 metrics per
# log_batch call, and 1000 entities in all.
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_DATASET_DIGEST = 36

TERMINAL = ("FINISHED", "FAILED", "KILLED")

_lock = threading.Lock()
_clients: dict[str, MlflowClient] = {}


def absolute_uri(uri: str) -> str:
    """The same store, named so that a later ``os.chdir`` cannot move it."""
    if uri.startswith("sqlite:///"):
        rest = uri[len("sqlite:///") :]
        path, sep, query = rest.partition("?")
        if path and path != ":memory:" and not path.startswith("/"):
            return "sqlite:///" + os.path.abspath(path) + sep + query
        return uri
    if uri.startswith("file:") or "://" not in uri:
        path = uri[len("file:") :] if uri.startswith("file:") else uri
        path = path[2:] if path.startswith("//") else path
        return Path(os.path.abspath(path)).as_uri()
    return uri


def tracking_uri() -> str:
    """The store nbtrack writes to: NBTRACK_TRACKING_URI, else whatever MLflow would use."""
    return absolute_uri(settings.current().tracking_uri or mlflow.get_tracking_uri())


def configure() -> str:
    """Point MLflow at nbtrack's store (absolute), bound server waits, and keep MLflow quiet.

    Called before every run: cheap, and it follows a changed NBTRACK_TRACKING_URI.
    """
    s = settings.current()
    uri = tracking_uri()
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
    # MLflow's defaults (a 120 s timeout, 7 retries with backoff) make one call to a hung server
    # (it accepts the connection and never answers) wait for minutes, and MLflow reads these at
    # every call, so one timeout is all a call waits: MLflow retries a read timeout like a refused
    # connection, and each retry waits the whole timeout again. A call that did not get through
    # marks the store down (store.outages), so the calls after it do not wait at all. The user's
    # own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(s.http_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(s.http_timeout))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    quiet_mlflow()
    # Before MLflow's fluent API (start_run) opens it: a new SQLite store is created once.
    creation.ensure_created(uri)
    return uri


def quiet_mlflow() -> None:
    """The notebook's output belongs to the user: MLflow's INFO chatter stays out of it, and so
    do the lines MLflow prints about what nbtrack reports in its own words."""
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    # MLflow logs an ERROR with a traceback for every SQLAlchemy OperationalError (a read-only or
    # locked SQLite store) before raising it as an MlflowException, which nbtrack turns into one
    # sentence: the log line would say it twice, the second time as a traceback.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # A run ended against a tracking server prints "🏃 View run ... at: ..." and "🧪 View
    # experiment at: ..." to stdout, after one more request to the server; nbtrack's run card
    # links the run. MLflow's documented switch; the user's own setting wins.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def client(uri: str | None = None) -> MlflowClient:
    uri = uri or tracking_uri()
    c = _clients.get(uri)
    if c is None:
        quiet_mlflow()  # creating a store logs MLflow's INFO lines
        creation.ensure_created(uri)  # outside _lock: it may wait for another process
        with _lock:
            c = _clients.get(uri)
            if c is None:
                c = _clients[uri] = MlflowClient(tracking_uri=uri)
    return c


def server_url(uri: str | None = None) -> str | None:
    """Base URL of the MLflow UI when the store is a tracking server, else None."""
    uri = uri or tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


@contextlib.contextmanager
def translated(operation: str, uri: str | None = None, *, fail_fast: bool = True) -> Iterator[None]:
    """Turn MLflow's exceptions into nbtrack's, saying which operation failed.

    Against a tracking server, a store known to be down (store.outages) fails at once, before
    the block runs (unless ``fail_fast`` is False: the block has local work to do on its way to
    the server); a block that times out or is refused marks it down.
    """
    uri = uri or tracking_uri()
    remote = uri.startswith(("http://", "https://"))
    if remote and fail_fast:
        outages.check(uri, operation, safe_uri(uri))
    try:
        yield
    except MlflowException as e:
        down = outages.failed(uri, e, operation, safe_uri(uri)) if remote else None
        if remote and down is None:
            outages.succeeded(uri)  # it answered, if only to refuse
        raise (down or _translate(operation, e, uri)) from e
    except OSError as e:  # disk full, permission denied, unreachable server at socket level
        down = outages.failed(uri, e, operation, safe_uri(uri)) if remote else None
        raise (down or StoreError(operation, str(e) or type(e).__name__, safe_uri(uri))) from e
    if remote:
        outages.succeeded(uri)


def unreachable(uri: str | None = None) -> bool:
    """Whether calls to the store (default: nbtrack's) fail at once now: its server did not
    answer a moment ago (store.outages). Costs a dict lookup; never makes a request."""
    return outages.unreachable(uri or tracking_uri())


def outage(uri: str | None = None) -> outages.Outage | None:
    """What this process knows of the store's outage (default: nbtrack's store): since when,
    why, how many calls waited and how many failed at once; None when its last call succeeded."""
    return outages.outage(uri or tracking_uri())


def _translate(operation: str, e: MlflowException, uri: str | None = None) -> Exception:
    code = getattr(e, "error_code", "")
    message = _first_line(e.message if hasattr(e, "message") else str(e))
    if code == "PERMISSION_DENIED":
        message = "permission denied by the tracking server"
    return StoreError(operation, message, safe_uri(uri))


def _first_line(text: str) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:300]


def safe_uri(uri: str | None = None) -> str:
    """A store's address (default: nbtrack's) for a message: scheme, host and path, never the
    userinfo or query, where credentials live (store sits below capture's redaction)."""
    try:
        uri = uri or tracking_uri()
        if "://" not in uri:
            return uri
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return ""


def mlflow_loaded() -> bool:
    """Whether the process has imported MLflow (the user's code, or nbtrack's store)."""
    import sys

    return "mlflow" in sys.modules
