"""The verdict of a reproduction: what ``nbtrack.reproduce`` returns, as text and as HTML.

Pure data and rendering: no MLflow, no IPython. Every string that came from a run (names, paths,
sources, tracebacks, diffs) is HTML-escaped in the HTML built here.

The varying parts of a report (run ids, timings) sit in fixed phrases (``run <id>``,
``timing: ...``), so that nbtrack's nbval sanitize file can collapse them and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from nbtrack import html_text

REPRODUCED, DRIFTED, RAN, FAILED = "REPRODUCED", "DRIFTED", "RAN", "FAILED"
VERDICTS = (REPRODUCED, DRIFTED, RAN, FAILED)
COLOURS = {REPRODUCED: "#2e7d32", DRIFTED: "#ef6c00", RAN: "#546e7a", FAILED: "#c62828"}
# What a verdict's headline adds: RAN claims nothing about the results.
SUMMARIES = {RAN: "no metrics to compare"}

# Check statuses: "ok"; "drift" (differs from the record; a likely cause when metrics moved);
# "missing" (an input is gone: nothing can run); "skipped" (nothing recorded to check against);
# "note" (worth knowing, not a difference).
DRIFT_STATUSES = ("drift", "missing")
QUIET_STATUSES = ("ok", "skipped")  # a check whose detail the text report leaves out


@dataclass(frozen=True)
class Check:
    """One check of the record against the present: data, code, environment, seed, notebook."""

    name: str
    status: str
    message: str
    detail: str = ""  # a diff, a list of packages: shown folded

    @property
    def drift(self) -> bool:
        return self.status in DRIFT_STATUSES


@dataclass(frozen=True)
class MetricDiff:
    """A metric's last value in the original run and in the re-run."""

    key: str
    original: float
    rerun: float | None  # None: the re-run did not log it
    abs_diff: float | None
    rel_diff: float | None
    within: bool


@dataclass(frozen=True)
class Failure:
    """What stopped the reproduction: a cell that failed, or a reason before anything ran."""

    reason: str  # one sentence
    cell: str = ""  # "In [4]" or "cell 3"
    source: str = ""
    traceback: str = ""
    timed_out: bool = False


@dataclass
class ReproReport:
    """The outcome of ``nbtrack.reproduce(run_id)``.

    ``verdict``: REPRODUCED (at least one metric compared, every one within tolerance),
    DRIFTED (it ran, some metric is outside tolerance; ``causes`` says what likely moved it),
    RAN (it ran and finished, but no metric was compared: the original logged none, so nothing
    says whether its results hold) or FAILED (``failure``).
    ``checks``: the record against the present (data digests, code, environment, seed).
    ``rerun_id``: the run of the re-executed cell, which carries the verdict (tag
    ``nbtrack.repro.verdict``), this report (artifact ``nbtrack/repro/report.json``) and the
    executed notebook (``nbtrack/repro/output.ipynb``).
    """

    verdict: str
    run_id: str
    run_name: str = ""
    experiment: str = ""
    rerun_id: str | None = None
    rtol: float = 1e-6
    atol: float = 0.0
    metrics: list[MetricDiff] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    failure: Failure | None = None
    rebuilt_from: str = ""  # "the notebook snapshot", "the kernel history", "the script"
    seed: int | None = None
    original_seconds: float | None = None  # the original run (the tracked cell)
    rerun_seconds: float | None = None  # the re-run of the cell
    elapsed: float | None = None  # the whole reproduction: checks, kernel, verdict
    record_run_id: str | None = None  # where the verdict is recorded (None: nothing ran)
    rerun_ids: list[str] = field(default_factory=list)  # every run the re-execution made
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """REPRODUCED only: a RAN compared nothing."""
        return self.verdict == REPRODUCED

    @property
    def summary(self) -> str:
        """The verdict as one line: ``REPRODUCED``, ``RAN: no metrics to compare``."""
        extra = SUMMARIES.get(self.verdict)
        return f"{self.verdict}: {extra}" if extra else self.verdict

    @property
    def drifted(self) -> list[MetricDiff]:
        return [m for m in self.metrics if not m.within]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return render_text(self)

    def __repr__(self) -> str:
        return render_text(self)

    def _repr_html_(self) -> str:
        return render_html(self)


# -- formatting --------------------------------------------------------------------------------


def fmt_value(v: float | None) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{v:.6g}"


def fmt_diff(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return "0" if v == 0 else f"{v:.3g}"


def _seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def timing(r: ReproReport) -> str:
    return (
        f"timing: re-run {_seconds(r.rerun_seconds)} · original {_seconds(r.original_seconds)}"
        f" · reproduce {_seconds(r.elapsed)}"
    )


def _headline(r: ReproReport) -> list[str]:
    name = f" ({r.run_name}, experiment {r.experiment})" if r.run_name else ""
    lines = [f"run {r.run_id}{name}"]
    how = []
    if r.rebuilt_from:
        how.append(f"rebuilt from {r.rebuilt_from}")
    if r.seed is not None:
        how.append(f"seed {r.seed}")
    if r.rerun_id:
        lines.append(f"re-run {r.rerun_id}" + (f" · {', '.join(how)}" if how else ""))
    elif how:
        lines.append(", ".join(how))
    return lines


def render_text(r: ReproReport) -> str:
    lines = [f"nbtrack reproduce: {r.summary}"]
    lines += ["  " + line for line in _headline(r)]
    if r.elapsed is not None:
        lines.append("  " + timing(r))
    if r.failure is not None:
        f = r.failure
        lines.append(f"failure: {f.reason}")
        if f.source:
            lines.append(f"  {f.cell}:" if f.cell else "  cell:")
            lines += ["    " + line for line in f.source.rstrip().splitlines()]
        if f.traceback:
            lines.append("  traceback:")
            lines += ["    " + line for line in f.traceback.rstrip().splitlines()]
    if r.causes:
        lines.append("likely cause" + ("s:" if len(r.causes) > 1 else ":"))
        lines += [f"  - {c}" for c in r.causes]
    if r.metrics:
        lines.append(f"metrics (rtol {r.rtol:g}, atol {r.atol:g}):")
        rows = [("metric", "original", "re-run", "abs diff", "rel diff", "")]
        rows += [
            (
                m.key,
                fmt_value(m.original),
                fmt_value(m.rerun),
                fmt_diff(m.abs_diff),
                fmt_diff(m.rel_diff),
                "ok" if m.within else "DRIFTED",
            )
            for m in r.metrics
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
            lines.append(("  " + "  ".join(cells)).rstrip())
    if r.checks:
        lines.append("checks:")
        width = max(len(c.name) for c in r.checks)
        for c in r.checks:
            lines.append(f"  {c.name:<{width}}  {c.status:<7}  {c.message}")
            if c.detail and c.status not in QUIET_STATUSES:
                lines += ["      " + line for line in c.detail.rstrip().splitlines()[:40]]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


STYLE = (
    "<style>.nbtrack-repro{font:12px/1.45 sans-serif;margin:4px 0}"
    ".nbtrack-repro table{border-collapse:collapse;margin:2px 0 6px}"
    ".nbtrack-repro td,.nbtrack-repro th{padding:1px 8px;text-align:left;vertical-align:top;"
    "border-bottom:1px solid rgba(127,127,127,.2)}"
    ".nbtrack-repro pre{font-size:11px;margin:2px 0;padding:4px;overflow-x:auto;"
    "max-height:24em;background:rgba(127,127,127,.07)}"
    ".nbtrack-repro .dim{color:#777}.nbtrack-repro .bad{color:#c62828;font-weight:bold}"
    ".nbtrack-repro .warn{color:#ef6c00}.nbtrack-repro summary{cursor:pointer;color:#555}"
    "</style>"
)


def render_html(r: ReproReport) -> str:
    e = html_text.escape
    colour = COLOURS.get(r.verdict, "#555")
    parts = [
        STYLE,
        f"<div class='nbtrack-repro' style='border-left:3px solid {colour};padding:2px 8px'>",
        f"<b>nbtrack reproduce</b> · <b style='color:{colour}'>{e(r.summary)}</b>",
    ]
    parts += [f"<div>{e(line)}</div>" for line in _headline(r)]
    if r.elapsed is not None:
        parts.append(f"<div class='dim'>{e(timing(r))}</div>")
    if r.failure is not None:
        f = r.failure
        parts.append(f"<div class='bad'>failure: {e(f.reason)}</div>")
        if f.source:
            parts.append(f"<div class='dim'>{e(f.cell or 'cell')}</div><pre>{e(f.source)}</pre>")
        if f.traceback:
            parts.append(f"<pre>{e(f.traceback)}</pre>")
    if r.causes:
        items = "".join(f"<li>{e(c)}</li>" for c in r.causes)
        parts.append(f"<div class='warn'>likely cause:</div><ul style='margin:0'>{items}</ul>")
    if r.metrics:
        head = "".join(
            f"<th>{h}</th>" for h in ("metric", "original", "re-run", "abs diff", "rel diff", "")
        )
        rows = []
        for m in r.metrics:
            mark = "<td>ok</td>" if m.within else "<td class='bad'>DRIFTED</td>"
            cells = (m.key, fmt_value(m.original), fmt_value(m.rerun))
            cells += (fmt_diff(m.abs_diff), fmt_diff(m.rel_diff))
            rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + mark + "</tr>")
        parts.append(
            f"<div class='dim'>metrics (rtol {r.rtol:g}, atol {r.atol:g})</div>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        )
    if r.checks:
        rows = []
        for c in r.checks:
            cls = "bad" if c.status == "missing" else "warn" if c.status == "drift" else "dim"
            detail = ""
            if c.detail:
                detail = f"<details><summary>details</summary><pre>{e(c.detail)}</pre></details>"
            rows.append(
                f"<tr><td>{e(c.name)}</td><td class='{cls}'>{e(c.status)}</td>"
                f"<td>{e(c.message)}{detail}</td></tr>"
            )
        parts.append(f"<div class='dim'>checks</div><table>{''.join(rows)}</table>")
    parts += [f"<div class='dim'>note: {e(n)}</div>" for n in r.notes]
    parts.append("</div>")
    return "".join(parts)


__all__ = [
    "DRIFTED",
    "FAILED",
    "RAN",
    "REPRODUCED",
    "SUMMARIES",
    "VERDICTS",
    "Check",
    "Failure",
    "MetricDiff",
    "ReproReport",
    "render_html",
    "render_text",
]
