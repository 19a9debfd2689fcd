"""The audit trail: one record per move in the registered model's ``nbtrack.audit.*`` tags (written
here, read back as a table), and the check that this user may change the model."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from nbtrack import store
from nbtrack.capture.redaction import nbtrack_text
from nbtrack.model_registry.names import AUDIT_COLUMNS, AUDIT_FORMAT_TAG, AUDIT_PREFIX
from nbtrack.model_registry.versions import _model

# -- the audit trail -----------------------------------------------------------------------------


def append_record(
    name: str,
    *,
    action: str,
    stage: str | None,
    previous: str | None,
    number: str,
    who: str,
    when: str,
    reason: str,
) -> str:
    """Append one record to the model's audit trail; returns its tag key.

    The key is new for every record (time in ns, then random), so two writers never overwrite
    each other, and keys sort in time order."""
    key = f"{AUDIT_PREFIX}{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"
    entry = {
        "action": action,
        "stage": stage,
        "from": previous,
        "to": number,
        "who": who,
        "when": when,
        "reason": reason or None,
    }
    store.set_model_tag(name, key, nbtrack_text(json.dumps(entry, sort_keys=True)))
    return key


def audit_records(name: str) -> list[dict[str, Any]]:
    """The audit trail of model ``name``, oldest first, as dicts (the DataFrame's rows)."""
    store.configure()
    rm = _model(name)
    rows = []
    for key, value in sorted((rm.tags or {}).items()):
        if not key.startswith(AUDIT_PREFIX):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue  # not nbtrack's: skip rather than fail the whole trail
        if not isinstance(record, dict):
            continue
        rows.append(
            {
                "when": record.get("when"),
                "who": record.get("who"),
                "action": record.get("action"),
                "stage": record.get("stage"),
                "from_version": record.get("from"),
                "to_version": record.get("to"),
                "reason": record.get("reason"),
                "key": key,
            }
        )
    return rows


def audit(name: str):
    """The audit trail of model ``name`` as a DataFrame, oldest first: when (UTC), who, action
    (register, promote, rollback, archive), stage, from_version, to_version, reason, key (the
    registered-model tag holding the record)."""
    import pandas as pd

    frame = pd.DataFrame(audit_records(name), columns=AUDIT_COLUMNS)
    frame["when"] = pd.to_datetime(frame["when"], utc=True, errors="coerce")
    return frame


# -- may this user change the model? -------------------------------------------------------------


def can_edit(name: str) -> str | None:
    """None when the store lets this user change model ``name``; else the sentence that says why
    not (a read-only account on a tracking server).

    A tracking server has no public "what may I do" call, so this writes a tag that is already
    there (the audit format marker): harmless, and refused exactly when a move would be. A
    local store is writable or fails loudly on the move itself."""
    store.configure()
    from nbtrack.errors import PermissionDenied

    if store.server_url() is None:
        return None
    try:
        store.set_model_tag(name, AUDIT_FORMAT_TAG, nbtrack_text("1"))
    except PermissionDenied as e:
        return str(e)
    return None
