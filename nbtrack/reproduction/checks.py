"""The record of a run against the present: data digests, code, environment, seed; the metrics
of the original against those of its re-run; and what the differences say about a drift.

Each check returns a ``Check`` (nbtrack.reproduction.report). Only the messages of checks that found
something name versions or commits: a report of a run that reproduces reads the same on every
machine and every checkout.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nbtrack import record as R
from nbtrack.capture.git import run_git
from nbtrack.query.diff import parse_requirements
from nbtrack.reproduction.randomness import Draw
from nbtrack.reproduction.report import Check, MetricDiff

DETAIL_LINES = 200  # of a diff kept in a check's detail
_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/", re.M)


def _short(digest: str | None) -> str:
    return (digest or "?")[:12]


def _names(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# -- data --------------------------------------------------------------------------------------


def check_data(inputs: Sequence[Mapping[str, Any]]) -> Check:
    """Every recorded data input still there, with the digest it had."""
    from nbtrack.capture import data as datacap

    if not inputs:
        return Check("data", "skipped", "no data inputs recorded (--data)")
    missing, changed, same = [], [], []
    for item in inputs:
        given, path, digest = str(item["given"]), str(item["path"]), str(item["digest"])
        if not os.path.exists(path):
            missing.append(f"{given} is gone (expected at {path}, sha256 {digest})")
            continue
        [now] = datacap.fingerprint([path])
        if now.digest != digest:
            changed.append(
                f"{given} changed since the run (sha256 {_short(digest)} → {_short(now.digest)})"
            )
        else:
            same.append(given)
    if missing:
        return Check("data", "missing", "; ".join(missing))
    if changed:
        return Check("data", "drift", "; ".join(changed))
    return Check("data", "ok", f"{_names(same)} unchanged")


def check_data_hash(original: str | None, rerun: str | None) -> Check | None:
    """After the re-run: did the cell see the data the original saw (param ``data_hash``)?"""
    if not original or not rerun or original == rerun:
        return None
    return Check(
        "data",
        "drift",
        f"the re-run read other data (data_hash {_short(original)} → {_short(rerun)})",
    )


# -- code --------------------------------------------------------------------------------------


def without_notebooks(diff: str) -> str:
    """A git diff without its .ipynb files: the re-run runs the recorded notebook, so a change
    to the notebook file since is not a change to the code it runs."""
    starts = [m.start() for m in _DIFF_FILE.finditer(diff)]
    if not starts:
        return diff
    out = [diff[: starts[0]]]
    for begin, end in zip(starts, [*starts[1:], len(diff)], strict=True):
        section = diff[begin:end]
        m = _DIFF_FILE.match(section)
        if m and not m.group(1).endswith(".ipynb"):
            out.append(section)
    return "".join(out)


def check_code(
    tags: Mapping[str, str], recorded_diff: str | None, places: Sequence[str | None]
) -> Check:
    """The commit the run was made at still exists, and the working tree (notebooks aside)
    is as it was then. ``places``: folders to look for the repository in, in order."""
    from nbtrack.capture.redaction import Redactor

    if tags.get(R.TAG_GIT) == "not a git repository":
        return Check("code", "skipped", "not a git repository when the run was made: not checked")
    commit = tags.get(R.TAG_GIT_COMMIT)
    if not commit:
        return Check("code", "skipped", "no git commit recorded: not checked")
    root = None
    for place in places:
        if not place or not os.path.isdir(place):
            continue
        top = run_git(place, "rev-parse", "--show-toplevel")
        if top and run_git(top.strip(), "cat-file", "-e", f"{commit}^{{commit}}") is not None:
            root = top.strip()
            break
    if root is None:
        return Check(
            "code",
            "drift",
            f"commit {commit[:10]} is not in any repository here: the code the run imported "
            "cannot be checked (check out the run's repository)",
        )
    now = run_git(root, "diff", commit, "--", ".", ":(exclude)*.ipynb") or ""
    now = Redactor().text(now)  # as the run's git.diff was
    then = without_notebooks(recorded_diff or "")
    if now.strip() == then.strip():
        return Check("code", "ok", "the working tree is as it was (notebooks aside)")
    files = sorted(set(_DIFF_FILE.findall(now)) | set(_DIFF_FILE.findall(then)))
    detail = "\n".join(now.splitlines()[:DETAIL_LINES])
    if then.strip():
        detail = "(the run itself had uncommitted changes: see its nbtrack/git.diff)\n" + detail
    return Check(
        "code",
        "drift",
        f"the working tree differs from the run's: {_names(files)} changed since commit "
        f"{commit[:10]}",
        detail,
    )


def check_history(history: Sequence[str], earlier: Sequence[str], rebuilt_from: str) -> Check:
    """Did the kernel run, before the cell, something the rebuilt notebook does not hold?"""
    if rebuilt_from == "the kernel history":
        # A history of this cell alone may also be a frontend that stores none (nbval): said
        # when the re-run fails (reproduction), not here, where it would read as a problem.
        return Check("notebook", "ok", "rebuilt from the cells the kernel ran, in order")
    from nbtrack.capture.source import is_papermill_parameters_cell

    # papermill's injected parameters are injected again; earlier reproductions are left out.
    ran = [h.strip() for h in history[:-1] if h.strip() and not is_papermill_parameters_cell(h)]
    held = {c.strip() for c in earlier}
    hidden = [h for h in ran if h not in held and "nbtrack.reproduce" not in h]
    # Cells the kernel skipped run in the re-run; a history of the cell alone says nothing
    # (a frontend that stores none).
    skipped = [c.strip() for c in earlier if c.strip() and c.strip() not in set(ran)]
    skipped = skipped if ran else []
    if not hidden and not skipped:
        return Check("notebook", "ok", "the saved notebook holds what the kernel ran before")
    problems = []
    if hidden:
        problems.append(
            f"the kernel ran {len(hidden)} cell(s) before this one that the saved notebook "
            "does not hold (edited or deleted since): state the re-run does not have"
        )
    if skipped:
        problems.append(
            f"the saved notebook holds {len(skipped)} cell(s) before this one that the kernel "
            "had not run: the re-run runs them"
        )
    return Check("notebook", "drift", "; ".join(problems), "\n\n".join(hidden + skipped)[:20000])


def check_secrets(cells: Sequence[int], kind: str) -> Check | None:
    if not cells:
        return None
    where = "the script" if kind == "script" else f"cell(s) {', '.join(map(str, cells))}"
    return Check(
        "secrets",
        "drift",
        f"{where} held a secret literal that the record redacted: the re-run sees "
        "[REDACTED] in its place. Read secrets from the environment (os.environ), which the "
        "re-run inherits",
    )


# -- environment -------------------------------------------------------------------------------


def check_environment(
    recorded: str | None, current: str | None, python_then: str | None, python_now: str | None
) -> Check:
    """Package versions against ``nbtrack/requirements.txt``, and the Python version."""
    problems, detail = [], []
    if python_then and python_now and python_then != python_now:
        problems.append(f"Python {python_then} → {python_now}")
    if recorded is None or current is None:
        if not problems:
            return Check("environment", "skipped", "no requirements recorded: not checked")
    else:
        then, now = parse_requirements(recorded), parse_requirements(current)
        changed = [
            f"{name} {version} → {now.get(name, '(not installed)')}"
            for name, version in sorted(then.items())
            if now.get(name) != version
        ]
        if changed:
            problems.append(f"{len(changed)} package(s) differ: {_names(changed)}")
            detail = changed
    if not problems:
        return Check("environment", "ok", "same Python and package versions")
    return Check("environment", "drift", "; ".join(problems), "\n".join(detail))


def check_determinism(then: Mapping | None, now: Mapping | None) -> Check | None:
    """torch's determinism flags at the start of the original and of the re-run."""
    if not then or not now or dict(then) == dict(now):
        return None
    diffs = [f"{k} {then.get(k)} → {now.get(k)}" for k in sorted(then) if then.get(k) != now.get(k)]
    return Check("determinism", "drift", "torch determinism differs: " + ", ".join(diffs))


def check_hardware(then: Mapping[str, Any] | None, now: Mapping[str, Any]) -> Check | None:
    """CPU count, machine and GPUs: thread counts follow the cores, and a floating-point sum
    split over other threads rounds differently."""
    if not then:
        return None
    diffs = [
        f"{label} {then.get(key)} → {now.get(key)}"
        for key, label in (("cpu_count", "CPUs"), ("machine", "machine"), ("gpus", "GPUs"))
        if key in then and then.get(key) != now.get(key)
    ]
    if not diffs:
        return None
    return Check("hardware", "drift", "; ".join(diffs))


def check_seed(params: Mapping[str, str]) -> Check:
    seed = params.get("random_seed")
    if seed is None or not seed.lstrip("-").isdigit():
        return Check("seed", "drift", "no seed recorded: the re-run draws its own")
    return Check("seed", "ok", f"seed {seed} applied to the cell again")


# -- metrics -----------------------------------------------------------------------------------


def compare_metrics(
    original: Mapping[str, float],
    rerun: Mapping[str, float],
    keys: Sequence[str],
    rtol: float,
    atol: float,
) -> list[MetricDiff]:
    """Last values, original against re-run: within when |Δ| <= atol + rtol·|original|
    (numpy's ``isclose``, relative to the original). NaN equals NaN."""
    out = []
    for key in keys:
        a, b = float(original[key]), rerun.get(key)
        if b is None:
            out.append(MetricDiff(key, a, None, None, None, False))
            continue
        b = float(b)
        if math.isnan(a) or math.isnan(b):
            same = math.isnan(a) and math.isnan(b)
            out.append(MetricDiff(key, a, b, 0.0 if same else math.nan, None, same))
            continue
        if math.isinf(a) or math.isinf(b):
            same = a == b
            out.append(MetricDiff(key, a, b, 0.0 if same else math.inf, None, same))
            continue
        d = abs(b - a)
        rel = 0.0 if d == 0 else (d / abs(a) if a else math.inf)
        out.append(MetricDiff(key, a, b, d, rel, d <= atol + rtol * abs(a)))
    return out


# -- what moved the metrics --------------------------------------------------------------------

_CAUSE_ORDER = (
    "data",
    "code",
    "notebook",
    "secrets",
    "environment",
    "determinism",
    "hardware",
    "seed",
)
_CAUSE_LABEL = {
    "data": "data digest changed",
    "code": "code changed",
    "notebook": "code changed",
    "secrets": "a secret was redacted",
    "environment": "package versions changed",
    "determinism": "torch determinism changed",
    "hardware": "other hardware",
    "seed": "no seed",
}
UNSEEDED = (
    "no seed: the seed was applied again, nothing else changed, and the notebook's code calls no "
    "source the seed misses: the randomness comes from code it calls (an imported module with a "
    "generator of its own), str hashing without PYTHONHASHSEED, or nondeterministic threads or "
    "GPU kernels"
)
IN_CELL = (
    "the cell draws randomness no seed covers: {calls}; draw from a seeded generator instead "
    "(random.Random(seed), np.random.default_rng(seed))"
)
BEFORE_CELL = (
    "randomness from a cell before the tracked cell (no seed set there): {calls}; seed it there, "
    "or make it a tracked cell with --seed"
)


def _calls(draws: Sequence[Draw], limit: int = 3) -> str:
    return _names([d.describe() for d in draws], limit)


def causes(
    checks: Sequence[Check], in_cell: Sequence[Draw] = (), before: Sequence[Draw] = ()
) -> list[str]:
    """The likely causes of a drift, most likely first: every check that found a difference;
    then randomness the seed does not cover, where the code shows it: sources no seed reaches
    called in the cell itself (``in_cell``), draws in the cells before it that no seed covered
    (``before``; reproduction.randomness). When nothing shows, randomness from elsewhere
    (UNSEEDED): no call in the cell is blamed that is not there."""
    rank = {name: i for i, name in enumerate(_CAUSE_ORDER)}
    found = sorted((c for c in checks if c.drift), key=lambda c: rank.get(c.name, len(rank)))
    out = [f"{_CAUSE_LABEL.get(c.name, c.name)}: {c.message}" for c in found]
    if in_cell:
        out.append(IN_CELL.format(calls=_calls(in_cell)))
    if before:
        out.append(BEFORE_CELL.format(calls=_calls(before)))
    return out or [UNSEEDED]


__all__ = [
    "BEFORE_CELL",
    "IN_CELL",
    "UNSEEDED",
    "causes",
    "check_code",
    "check_data",
    "check_data_hash",
    "check_determinism",
    "check_environment",
    "check_hardware",
    "check_history",
    "check_secrets",
    "check_seed",
    "compare_metrics",
    "without_notebooks",
]
