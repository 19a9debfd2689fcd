"""What was different about two or more runs: their records read back, compared by section.

``diff(run_a, run_b, ...)`` reads each run's record (params, metrics, tags and the cell source,
requirements and git diff artifacts) through ``nbtrack.store`` and keeps only what differs, by
section: params, metrics, code, data, environment, plus unified diffs of the cell source and of
the uncommitted changes. ``RunsDiff`` shows itself as text and as HTML; every string that came
from a run is escaped in the HTML.

(Snapshot is the diff's own view of a run: a RunView plus the three artifact texts it compares.)
"""

from __future__ import annotations

import difflib
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtrack import record as _record
from nbtrack.errors import UsageError
from nbtrack.query import compare

# -- a run's record, for diffs -----------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a diff looks at for one run."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    datasets: Mapping[str, str]  # dataset name -> digest
    cell: str | None
    requirements: str | None
    git_diff: str | None
    profile: Mapping[str, Any] | None = None  # the input's profile (inference runs, or logged)

    @property
    def config(self) -> dict[str, str]:
        """Params that configure the run (random_seed included: it changes the outcome)."""
        return {
            k: v
            for k, v in self.params.items()
            if k not in (_record.PARAM_GIT_COMMIT, _record.PARAM_DATA_HASH)
            and not compare.ENV_PARAM.match(k)
        }

    @property
    def packages(self) -> dict[str, str]:
        return parse_requirements(self.requirements or "")


def parse_requirements(text: str) -> dict[str, str]:
    """``name==version`` lines -> {normalised name: version} (other lines keep their text)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        key = re.sub(r"[-_.]+", "-", name.strip()).lower()
        out[key] = version.strip() if sep else line
    return out


_snapshots: dict[tuple[str, str], Snapshot] = {}
_snap_lock = threading.Lock()


def snapshot(run_id: str) -> Snapshot:
    """The record of a run, read through nbtrack.store; finished runs are cached (their
    artifacts do not change)."""
    from nbtrack import store

    uri = store.tracking_uri()
    with _snap_lock:
        hit = _snapshots.get((uri, run_id))
    if hit is not None:
        return hit
    store.configure()
    run = store.get_run(run_id)
    info = data = run
    snap = Snapshot(
        run_id=info.run_id,
        name=info.name or info.run_id[:8],
        experiment_id=info.experiment_id,
        status=info.status,
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=dict(data.tags),
        datasets=dict(run.datasets),
        cell=store.artifact_text(run_id, _record.ARTIFACT_CELL),
        requirements=store.artifact_text(run_id, _record.ARTIFACT_REQUIREMENTS),
        git_diff=store.artifact_text(run_id, _record.ARTIFACT_GIT_DIFF),
        profile=_profile(store.artifact_text(run_id, _record.ARTIFACT_INPUT_PROFILE)),
    )
    if snap.status != "RUNNING":
        with _snap_lock:
            if len(_snapshots) > 512:  # a kernel's worth of diffs; artifacts can be large
                _snapshots.clear()
            _snapshots[(uri, run_id)] = snap
    return snap


def _profile(text: str | None) -> Mapping[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


PROFILE_STATS = ("mean", "std", "min", "max", "null_rate")


def _data_profile(s: Snapshot) -> dict[str, Any]:
    """The input's profile as ``<column> <stat>`` rows (a run without one has none)."""
    columns = (s.profile or {}).get("columns") or {}
    out: dict[str, Any] = {}
    for col, stats in columns.items():
        for stat in PROFILE_STATS:
            if isinstance(stats, dict) and stat in stats:
                out[f"{col} {stat}"] = stats[stat]
    if s.profile and "rows" in s.profile:
        out["rows"] = s.profile["rows"]
    return out


# -- the diff ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One key that differs: its value in each run (None: the run does not have it)."""

    key: str
    values: tuple[str | None, ...]

    @property
    def change(self) -> str:
        if len(self.values) == 2:
            a, b = self.values
            return "added" if a is None else "removed" if b is None else "changed"
        return "differs"


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[Row]
    same: dict[str, str]  # identical keys and their common value

    def __bool__(self) -> bool:
        return bool(self.rows)

    def keys(self) -> list[str]:
        return [r.key for r in self.rows]


@dataclass(frozen=True)
class TextDiff:
    """A unified diff of one text between the first run and another."""

    title: str
    against: str  # the other run's name
    diff: str  # "" when identical, or when a run did not record the text
    missing: tuple[str, ...] = ()  # the runs (of the two) that did not record it

    def __bool__(self) -> bool:
        return bool(self.diff)


@dataclass(frozen=True)
class RunsDiff:
    """What differs between runs (the first is the reference of the text diffs).

    ``d["params"]`` is a Section (``.rows``, ``.same``); ``d.texts`` the unified diffs.
    Printed as text; shown as HTML in a notebook."""

    run_ids: tuple[str, ...]
    names: tuple[str, ...]
    sections: list[Section]
    texts: list[TextDiff] = field(default_factory=list)

    def __getitem__(self, title: str) -> Section:
        for s in self.sections:
            if s.title == title:
                return s
        raise KeyError(title)

    @property
    def identical(self) -> bool:
        return not any(self.sections) and not any(self.texts)

    def __repr__(self) -> str:
        from nbtrack.query.diff_render import render_text

        return render_text(self)

    def _repr_html_(self) -> str:
        from nbtrack.query.diff_render import render_html

        return render_html(self)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)


def _section(title: str, maps: Sequence[Mapping[str, Any]]) -> Section:
    keys = sorted({k for m in maps for k in m})
    rows, same = [], {}
    for k in keys:
        values = tuple(None if k not in m else _fmt(m[k]) for m in maps)
        if len(set(values)) == 1 and values[0] is not None:
            same[k] = values[0]
        else:
            rows.append(Row(k, values))
    return Section(title, rows, same)


def _code(s: Snapshot) -> dict[str, str]:
    t = s.tags
    out = {
        "git commit": _record.commit_of(t, s.params),
        "git branch": t.get(_record.TAG_GIT_BRANCH),
        "git dirty": t.get(_record.TAG_GIT_DIRTY),
        "notebook": t.get(_record.TAG_SOURCE_NAME),
        "notebook sha256": t.get(_record.TAG_NOTEBOOK_SHA256),
        # not the cell's sha256: the cell source diff shows what changed in it
    }
    return {k: v for k, v in out.items() if v}


def _data(s: Snapshot) -> dict[str, str]:
    out = {f"dataset {name}": digest for name, digest in s.datasets.items()}
    if s.params.get("data_hash"):
        out["data_hash"] = s.params["data_hash"]
    return out


def _environment(s: Snapshot, packages: bool) -> dict[str, str]:
    """Python and package versions: every installed distribution (requirements.txt) when all the
    runs compared recorded one, else the ``<lib>_version`` params, which every nbtrack run has."""
    out = {}
    for k, v in s.params.items():
        m = compare.ENV_PARAM.match(k)
        if m and (m.group(1) == "python" or not packages):
            out[m.group(1)] = v
    if packages:
        out.update(s.packages)
    elif s.requirements is not None:
        out["requirements.txt"] = "recorded"
    return out


def unified(a: str | None, b: str | None, name_a: str, name_b: str, path: str) -> str:
    """A unified diff of two texts ("" when equal); a missing text diffs as empty."""
    if (a or "") == (b or ""):
        return ""
    lines = difflib.unified_diff(
        (a or "").splitlines(keepends=True),
        (b or "").splitlines(keepends=True),
        fromfile=f"{name_a}/{path}",
        tofile=f"{name_b}/{path}",
        n=3,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def display_names(snaps: Sequence[Snapshot]) -> list[str]:
    """Run names, with a short id where two runs share a name."""
    counts: dict[str, int] = {}
    for s in snaps:
        counts[s.name] = counts.get(s.name, 0) + 1
    return [s.name if counts[s.name] == 1 else f"{s.name} ({s.run_id[:7]})" for s in snaps]


def diff_snapshots(snaps: Sequence[Snapshot]) -> RunsDiff:
    if len(snaps) < 2:
        raise UsageError("a diff needs at least two runs", "pass two run ids or select two rows")
    names = display_names(snaps)
    packages = all(s.requirements is not None for s in snaps)
    sections = [
        _section("params", [s.config for s in snaps]),
        _section("metrics", [s.metrics for s in snaps]),
        _section("code", [_code(s) for s in snaps]),
        _section("data", [_data(s) for s in snaps]),
        _section("environment", [_environment(s, packages) for s in snaps]),
        _section("status", [{"status": s.status} for s in snaps]),
    ]
    if any(s.profile for s in snaps):
        # Drift: how the inputs of two inference runs (or an inference run's and the training
        # data's, when the training run logged its profile) differ, column by column.
        sections.insert(4, _section("data profile", [_data_profile(s) for s in snaps]))
    ref = snaps[0]
    texts = []
    for s, name in zip(snaps[1:], names[1:], strict=True):
        texts.append(
            _text_diff("cell source", ref.cell, s.cell, names[0], name, _record.ARTIFACT_CELL)
        )
        note_a, note_b = ref.tags.get(_record.TAG_NOTE, ""), s.tags.get(_record.TAG_NOTE, "")
        if note_a or note_b:  # the whole description, where the table shows its first line
            texts.append(TextDiff("note", name, unified(note_a, note_b, names[0], name, "note")))
        # No git.diff means a clean work tree (or no repository): diff it as empty.
        texts.append(
            TextDiff(
                "uncommitted changes",
                name,
                unified(ref.git_diff, s.git_diff, names[0], name, _record.ARTIFACT_GIT_DIFF),
            )
        )
    return RunsDiff(tuple(s.run_id for s in snaps), tuple(names), sections, texts)


def _text_diff(title: str, a: str | None, b: str | None, na: str, nb: str, path: str) -> TextDiff:
    # A run without the artifact (a plain MLflow run) is not a run whose text was deleted.
    missing = tuple(n for n, t in ((na, a), (nb, b)) if t is None)
    if missing:
        return TextDiff(title, nb, "", missing)
    return TextDiff(title, nb, unified(a, b, na, nb, path))


def diff(*run_ids: str) -> RunsDiff:
    """What differs between runs (ids), the first being the reference."""
    ids = list(dict.fromkeys(run_ids))
    return diff_snapshots([snapshot(r) for r in ids])
