"""Names and small rules the registry shares: stage aliases, version numbers, who and when, the
tag names it writes, and text made safe to store."""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
from collections.abc import Mapping
from typing import Any

from nbtrack import record, settings
from nbtrack.capture.redaction import Redactor, nbtrack_text
from nbtrack.errors import (
    UsageError,
)
from nbtrack.redacted import Redacted

STAGE_TAG = record.TAG_STAGE  # production | staging | archived
AUDIT_PREFIX = record.TAG_AUDIT_PREFIX
AUDIT_FORMAT_TAG = record.TAG_AUDIT_FORMAT  # written by can_edit's probe; says how to read records
LEGACY = {"production": "Production", "staging": "Staging", "archived": "Archived"}
RESERVED_TAGS = (
    record.VERSION_TAG_RUN_ID,
    record.VERSION_TAG_DATA_HASH,
    record.VERSION_TAG_GIT_COMMIT,
    record.VERSION_TAG_NOTEBOOK,
)
MAX_METRIC_TAGS = 50  # a run with thousands of metric keys keeps its version's tags readable
MAX_REASON = 2000
REFUSED_STATUSES = ("FAILED", "KILLED")
AUDIT_COLUMNS = ["when", "who", "action", "stage", "from_version", "to_version", "reason", "key"]


# -- names ---------------------------------------------------------------------------------------

_log = logging.getLogger(__name__)


def aliases() -> dict[str, str]:
    """Stage -> alias name, as configured: {"production": ..., "staging": ...}."""
    s = settings.current()
    return {"production": s.production_alias, "staging": s.staging_alias}


def previous_alias() -> str:
    return f"previous_{settings.current().production_alias}"


def stage_of(stage: str) -> str:
    """ "production" or "staging", from what a user may write ("Production", the alias name)."""
    text = str(stage).strip().lower()
    for canonical, alias in aliases().items():
        if text in (canonical, alias.lower()):
            return canonical
    raise UsageError(
        f"unknown stage {stage!r}",
        "promote to 'production' or 'staging'; to archive a version use nbtrack.archive",
    )


def version_of(version: Any) -> str:
    """MLflow returns versions as int (SQL store) or str (REST); nbtrack uses "3"."""
    text = str(version).strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{version!r} is not a model version", "versions are numbers: 1, 2, 3")
    return str(int(text))


def _who() -> str:
    # Against a tracking server the account the server knows is the one that matters.
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no user name for this uid (a container): the trail says "unknown"
        _log.debug("getpass.getuser failed", exc_info=True)
        return "unknown"


def who() -> str:
    """Who is acting, as audit records name them (gc's log too)."""
    return _who()


def _now() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _clean(text: str | None, limit: int = MAX_REASON) -> Redacted:
    """A user's free text, with secrets redacted, before it becomes a tag."""
    return nbtrack_text(nbtrack_text(str(text or ""))[:limit])  # cut, then cleared again


def cleared(tags: Mapping[str, object]) -> dict[str, Redacted]:
    """Tag values as the store takes them: through the redaction pass."""
    redactor = Redactor()
    return {k: redactor.text(str(v)) for k, v in tags.items()}


def _alias_map(rm) -> dict[str, str]:
    return {str(k): version_of(v) for k, v in (getattr(rm, "aliases", None) or {}).items()}
