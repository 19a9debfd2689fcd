"""The first touch of an embedded SQLite store, serialised across the machine's processes.

MLflow creates a SQLite store on first use by running its alembic migrations in the process that
opens it, unguarded: eight processes starting tracked runs together on a store that does not exist
yet all run them at once, and all crash (``duplicate column name``, ``table _alembic_tmp_...
already exists``), leaving a file MLflow can neither open nor upgrade.

So the first time a process touches a ``sqlite:///`` store, nbtrack takes an ``fcntl.flock`` on
``<db>.nbtrack-lock`` beside the database and opens the store through MLflow's public client
(which creates and migrates it) while holding it:

- shared, when the database file already has content: creators hold the lock exclusively for the
  whole migration, so a file seen under the shared lock is a finished one, and processes opening
  an existing store do not queue behind each other;
- exclusive, when the file is missing or empty: one process creates it, the others wait and then
  find it migrated.

A stat alone would not do: during a migration the half-created file already exists. Once per
process per URI; later calls cost a set lookup. (``filelock`` would do the same, but it is not one
of nbtrack's dependencies, and flock is all a single machine needs.)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator

from mlflow import MlflowClient

from nbtrack import logs
from nbtrack.errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: no flock; MLflow's own behaviour, unguarded
    fcntl = None  # type: ignore[assignment]

_log = logs.get(__name__)

LOCK_SUFFIX = ".nbtrack-lock"

_opened: set[str] = set()
_guard = threading.Lock()  # threads of one process: the first one opens, the others wait

# What MLflow (SQLAlchemy, alembic) says when a migration was interrupted or raced.
_HALF_MIGRATED = (
    "already exists",
    "duplicate column",
    "_alembic_tmp_",
    "online migration expected",
    "no such table",
    "no such column",
)


def sqlite_path(uri: str) -> str | None:
    """The database file of an embedded SQLite store; None for anything else."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].partition("?")[0]
    return None if not path or path == ":memory:" else path


def ensure_created(uri: str) -> None:
    """Make sure the store at ``uri`` exists and is migrated before this process uses it.

    Raises StoreError with a sentence saying how to recover when MLflow cannot open it.
    """
    if uri in _opened:
        return
    db = sqlite_path(uri)
    if db is None:
        _opened.add(uri)
        return
    with _guard:
        if uri in _opened:
            return
        with _locked(db):
            _first_touch(uri, db)
        _opened.add(uri)


@contextlib.contextmanager
def _locked(db: str) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(db + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        # A read-only folder (someone else's store, opened to read) or a missing one (MLflow
        # says so in its own words): nothing to create, so nothing to serialise.
        _log.debug("no creation lock beside %s; opening it unguarded", db, exc_info=True)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not _has_content(db):
            # Converting to exclusive is not atomic (flock drops the shared lock first): two
            # processes may both get here, and the second finds the file MLflow's migration
            # made, under the same lock, so it only opens it.
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _has_content(db: str) -> bool:
    try:
        return os.stat(db).st_size > 0
    except OSError:
        return False


def _first_touch(uri: str, db: str) -> None:
    try:
        # The public way to make MLflow create (and migrate) the store: the client's first call
        # instantiates its SqlAlchemyStore, which runs the migrations a new file needs.
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # SQLAlchemy's and alembic's errors escape MLflow untranslated here
        raise broken_store_error(db, e) from e


def broken_store_error(db: str, e: BaseException) -> StoreError:
    """The sentence for a store MLflow cannot open, saying how to recover it."""
    text = str(getattr(e, "message", None) or e)
    first = (text.strip().splitlines() or [type(e).__name__])[0]
    first = first.removeprefix("(sqlite3.OperationalError) ")[:200]
    leftovers = _alembic_leftovers(db)
    if leftovers or any(marker in text.lower() for marker in _HALF_MIGRATED):
        # `mlflow db upgrade` fails on such a file too ("table _alembic_tmp_... already
        # exists"): a new file is the way out.
        reason = (
            f"MLflow left it half-migrated ({first}: processes that created it at once without "
            "nbtrack, or an interrupted migration, do this) and can neither open nor upgrade "
            f"it; move it aside (mv {db} {db}.broken) and nbtrack creates a new store at the "
            "next run"
        )
    elif "out-of-date database schema" in text:
        reason = (
            f"its schema is older than this MLflow's ({first}); back the file up and run "
            f"`mlflow db upgrade sqlite:///{db}`"
        )
    else:
        reason = first
    return StoreError("open the tracking store", reason, f"sqlite:///{db}")


def _alembic_leftovers(db: str) -> list[str]:
    """The scratch tables of an interrupted alembic migration, read without MLflow."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return []
    try:
        rows = con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '\\_alembic\\_tmp\\_%'"
            " ESCAPE '\\'"
        ).fetchall()
        return [r[0] for r in rows]
    except sqlite3.Error:
        return []
    finally:
        con.close()
