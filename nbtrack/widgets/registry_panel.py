"""``nbtrack.registry(name)``: the registry panel. A view only: what it shows comes from
``model_registry``, and every move it makes is a call to it; nothing here calls
MLflow.

Top: the registered models. For one model: its versions (stage and aliases, key metrics, data
hash, source run, created), each with "promote to staging", "promote to production" and
"archive"; "roll back" for the model; the audit trail below. Every move asks for confirmation
(with an optional reason for the audit trail) and shows its result. A button that cannot act is
disabled and says why in its tooltip; when the store refuses changes (a read-only account on a
tracking server), every move is disabled and a banner says so.

Every string shown is HTML-escaped. The panel's output also carries a static HTML picture
(``text/html``) for saved notebooks, nbconvert and papermill.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Any

from nbtrack.errors import MissingExtra, NbtrackError, PermissionDenied
from nbtrack.model_registry import registry as models

try:
    import ipywidgets as widgets
except ImportError as e:  # the widgets extra is optional
    raise MissingExtra("the registry panel", "widgets") from e

SHOWN_VERSIONS = 25  # newest versions in the panel (plus any that holds an alias)
AUDIT_ROWS = 20
NO_MODEL = "(choose a model)"
FONT = "font-size:12px;line-height:1.5"
CELL = "padding:2px 8px;text-align:left;vertical-align:top"
STAGE_COLOURS = {"production": "#2e7d32", "staging": "#1565c0", "archived": "#888"}
# Widths of the version rows' columns, shared by the header and every row. Cells keep their
# width (no shrinking, so the columns line up); on a narrow output the move buttons wrap below.
COLUMNS = [
    ("version", "52px"),
    ("stage", "150px"),
    ("key metrics", "130px"),
    ("data", "80px"),
    ("run · created", "112px"),
]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _short(value: str | None, n: int = 10) -> str:
    return (value or "")[:n]


def _metrics_text(info: models.VersionInfo) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in info.key_metrics(3))


def _stage_html(info: models.VersionInfo) -> str:
    parts = []
    if info.stage:
        colour = STAGE_COLOURS.get(info.stage, "#555")
        parts.append(f"<b style='color:{colour}'>{_esc(info.stage)}</b>")
    others = [a for a in info.aliases if a not in models.aliases().values()]
    if others:
        parts.append(" ".join(f"<code style='font-size:11px'>@{_esc(a)}</code>" for a in others))
    if info.legacy_stage not in ("None", "") and info.legacy_stage.lower() != (info.stage or ""):
        parts.append(f"<span style='color:#888'>stage {_esc(info.legacy_stage)}</span>")
    return " ".join(parts) or "<span style='color:#888'>none</span>"


def _table(headers: list[str], rows: list[list[str]], cls: str) -> str:
    """An HTML table; the cells are HTML already (escaped by the caller)."""
    head = "".join(
        f"<th style='{CELL};border-bottom:1px solid #ccc'>{_esc(h)}</th>" for h in headers
    )
    body = "".join(
        "<tr>" + "".join(f"<td style='{CELL}'>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f"<table class='{cls}' style='border-collapse:collapse;{FONT}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def models_table(summaries: list[models.ModelSummary]) -> str:
    if not summaries:
        return f"<div style='{FONT};color:#888'>no registered models yet</div>"
    rows = [
        [
            f"<b>{_esc(m.name)}</b>",
            _esc(m.production or "–"),
            _esc(m.staging or "–"),
            _esc(m.previous or "–"),
            _esc(m.latest or "–"),
            _esc(_when(m.updated)),
        ]
        for m in summaries
    ]
    headers = ["model", "production", "staging", "previous", "latest version", "updated"]
    return _table(headers, rows, "nbtrack-registry-models")


def versions_table(infos: list[models.VersionInfo]) -> str:
    rows = [
        [
            f"<b>{_esc(i.version)}</b>",
            _stage_html(i),
            _esc(_metrics_text(i)),
            f"<code>{_esc(_short(i.data_hash))}</code>",
            f"<code>{_esc(_short(i.run_id, 12))}</code>"
            + (f" <span style='color:#c62828'>{_esc(i.run_status)}</span>" if _bad(i) else ""),
            _esc(_when(i.created)),
        ]
        for i in infos
    ]
    headers = ["version", "stage", "key metrics", "data", "run", "created"]
    return _table(headers, rows, "nbtrack-registry-versions")


def audit_table(records: list[dict[str, Any]], limit: int = AUDIT_ROWS) -> str:
    if not records:
        return f"<div style='{FONT};color:#888'>no moves recorded yet</div>"
    shown = list(reversed(records))[:limit]
    rows = [
        [
            _esc((r["when"] or "").replace("T", " ")[:19]),
            _esc(r["who"]),
            _esc(r["action"]),
            _esc(r["stage"] or ""),
            _esc(f"{r['from_version'] or '–'} → {r['to_version'] or '–'}"),
            _esc(r["reason"] or ""),
        ]
        for r in shown
    ]
    note = (
        f"<div style='{FONT};color:#888'>latest {limit} of {len(records)} records</div>"
        if len(records) > limit
        else ""
    )
    headers = ["when (UTC)", "who", "action", "stage", "from → to", "reason"]
    return _table(headers, rows, "nbtrack-registry-audit") + note


def _bad(info: models.VersionInfo) -> bool:
    return info.run_status in models.REFUSED_STATUSES


def _button(description: str, tooltip: str, cls: str, width: str = "auto") -> widgets.Button:
    b = widgets.Button(
        description=description, tooltip=tooltip, layout={"width": width, "flex": "0 0 auto"}
    )
    b.add_class(cls)
    return b


class RegistryPanel(widgets.VBox):
    """The panel; see ``nbtrack.registry``. ``panel.select(name)`` shows a model,
    ``panel.refresh()`` reads the registry again; ``panel.infos`` are the versions shown."""

    def __init__(self, name: str | None = None):
        self.name: str | None = None
        self.summaries: list[models.ModelSummary] = []
        self.infos: list[models.VersionInfo] = []
        self.records: list[dict[str, Any]] = []
        self.read_only: str | None = None  # why the store refuses moves, if it does
        self.errors: list[BaseException] = []  # what the callbacks swallowed (tests look here)
        self._pending: tuple[Callable[[str], Any], str] | None = None  # move awaiting confirm
        self._updating = False

        self.title = widgets.HTML(f"<b style='{FONT}'>nbtrack registry</b>")
        self.picker = widgets.Dropdown(description="model", layout={"width": "360px"})
        self.picker.observe(self._on_pick, names="value")
        self.refresh_button = _button("refresh", "read the registry again", "nbtrack-refresh")
        self.refresh_button.on_click(lambda _: self._guard(self.refresh))
        self.models_view = widgets.HTML()
        self.summary = widgets.HTML()
        self.banner = widgets.HTML()
        self.rollback_button = _button(
            "roll back", "put the previous production version back", "nbtrack-rollback"
        )
        self.rollback_button.on_click(lambda _: self._guard(self._ask_rollback))
        self.rows = widgets.VBox()
        self.rows.add_class("nbtrack-registry-rows")
        self.note = widgets.HTML()

        self.question = widgets.HTML()
        self.reason = widgets.Text(
            placeholder="reason (optional; goes to the audit trail)", layout={"width": "340px"}
        )
        self.confirm_button = _button("confirm", "make the move", "nbtrack-confirm")
        self.confirm_button.button_style = "warning"
        self.confirm_button.on_click(lambda _: self._guard(self._confirm))
        self.cancel_button = _button("cancel", "leave everything as it is", "nbtrack-cancel")
        self.cancel_button.on_click(lambda _: self._guard(self._cancel))
        self.confirm_box = widgets.VBox(
            [self.question, widgets.HBox([self.reason, self.confirm_button, self.cancel_button])]
        )
        self.confirm_box.add_class("nbtrack-confirm-box")
        self.confirm_box.layout.display = "none"
        self.result = widgets.HTML()
        self.result.add_class("nbtrack-result")
        self.run_view = widgets.Output()
        self.audit_view = widgets.HTML()
        self.audit_view.add_class("nbtrack-audit")

        self.model_box = widgets.VBox(
            [
                widgets.HBox([self.summary, self.rollback_button]),
                self.banner,
                self.rows,
                self.note,
                self.confirm_box,
                self.result,
                self.run_view,
                widgets.HTML(f"<b style='{FONT}'>audit trail</b>"),
                self.audit_view,
            ]
        )
        super().__init__(
            [
                widgets.HBox([self.title, self.picker, self.refresh_button]),
                self.models_view,
                self.model_box,
            ]
        )
        self.add_class("nbtrack-registry")
        self._load_models()
        if name is not None:
            self.select(name)
        else:
            self._show_model()

    # -- reading ---------------------------------------------------------------------------------

    def _load_models(self) -> None:
        self.summaries = models.list_models()
        self.models_view.value = models_table(self.summaries)
        options = [NO_MODEL, *(m.name for m in self.summaries)]
        if self.name is not None and self.name not in options:
            options.append(self.name)
        self._updating = True
        try:
            self.picker.options = options
            self.picker.value = self.name if self.name is not None else NO_MODEL
        finally:
            self._updating = False

    def select(self, name: str) -> None:
        """Show model ``name`` (NotFound when there is none)."""
        models.require(name)  # NotFound, before anything changes
        self.name = name
        self.read_only = models.can_edit(name)
        self._cancel()
        self.result.value = ""
        self._load_models()
        self._show_model()

    def refresh(self) -> None:
        """Read the registered models, and the shown model's versions and audit trail, again."""
        self._load_models()
        self._show_model()

    def _show_model(self) -> None:
        # The list of models while none is chosen; then that model (the picker switches).
        self.models_view.layout.display = None if self.name is None else "none"
        if self.name is None:
            self.model_box.layout.display = "none"
            self.infos, self.records = [], []
            return
        self.model_box.layout.display = None
        self.infos = models.versions(self.name, limit=SHOWN_VERSIONS)
        self.records = models.audit_records(self.name)
        total = max((int(i.version) for i in self.infos), default=0)
        self.note.value = (
            f"<div style='{FONT};color:#888'>showing the newest {SHOWN_VERSIONS} versions and "
            "those with an alias</div>"
            if total > len(self.infos)
            else ""
        )
        self._summary()
        self.rows.children = [self._header(), *(self._row(i) for i in self.infos)]
        self.audit_view.value = audit_table(self.records)
        self.banner.value = (
            f"<div class='nbtrack-read-only' style='{FONT};color:#b71c1c;padding:2px 0'>"
            f"{_esc(self.read_only)}</div>"
            if self.read_only
            else ""
        )

    def _holder(self, stage: str) -> str | None:
        return next((i.version for i in self.infos if i.stage == stage), None)

    def _previous(self) -> str | None:
        alias = models.previous_alias()
        return next((i.version for i in self.infos if alias in i.aliases), None)

    def _summary(self) -> None:
        prod, staging = self._holder("production"), self._holder("staging")
        previous = self._previous()
        self.summary.value = (
            f"<div style='{FONT};padding:4px 0'><b>{_esc(self.name)}</b> · "
            f"production <b class='nbtrack-production'>{_esc(prod or 'none')}</b> · "
            f"staging <b>{_esc(staging or 'none')}</b> · "
            f"previous production <b>{_esc(previous or 'none')}</b></div>"
        )
        b = self.rollback_button
        if self.read_only:
            b.disabled, b.tooltip = True, self.read_only
        elif not previous or previous == prod:
            b.disabled, b.tooltip = True, "no previous production version to roll back to"
        else:
            b.disabled = False
            b.tooltip = f"put version {previous} back in production (replacing {prod or 'none'})"

    # -- the rows --------------------------------------------------------------------------------

    @staticmethod
    def _cell(value: str, width: str) -> widgets.HTML:
        return widgets.HTML(
            f"<div style='{FONT};overflow-wrap:anywhere'>{value}</div>",
            layout={"width": width, "flex": "0 0 auto"},
        )

    def _header(self) -> widgets.HBox:
        cells = [self._cell(f"<b>{_esc(c)}</b>", w) for c, w in COLUMNS]
        box = widgets.HBox([*cells, self._cell("<b>move</b>", "120px")])
        box.add_class("nbtrack-version-header")
        return box

    def _row(self, info: models.VersionInfo) -> widgets.HBox:
        widths = dict(COLUMNS)
        run_button = _button(
            f"run {_short(info.run_id, 8)}" if info.run_id else "no run",
            f"open run {info.run_id} in the comparison panel" if info.run_id else "",
            "nbtrack-open-run",
        )
        run_button.layout.padding = "0 6px"
        run_button.disabled = not info.run_id
        run_button.on_click(lambda _, i=info: self._guard(lambda: self.open_run(i)))
        metrics = _metrics_text(info)
        cells = [
            self._cell(f"<b>{_esc(info.version)}</b>", widths["version"]),
            self._cell(_stage_html(info), widths["stage"]),
            self._cell(
                f"<span title='{_esc(metrics)}'>{_esc(metrics)}</span>", widths["key metrics"]
            ),
            self._cell(
                f"<code title='{_esc(info.data_hash)}'>{_esc(_short(info.data_hash))}</code>",
                widths["data"],
            ),
            widgets.VBox(
                [
                    run_button,
                    self._cell(
                        f"<span style='color:#888'>{_esc(_when(info.created))}</span>", "auto"
                    ),
                ],
                layout={"width": widths["run · created"], "flex": "0 0 auto"},
            ),
        ]
        staging = _button("promote to staging", "", "nbtrack-promote-staging")
        production = _button("promote to production", "", "nbtrack-promote-production")
        archive = _button("archive", "", "nbtrack-archive")
        for b in (staging, production, archive):
            b.layout.padding = "0 6px"
            b.style.font_size = "12px"
        self._explain(info, staging, production, archive)
        staging.on_click(lambda _, i=info: self._guard(lambda: self._ask_promote(i, "staging")))
        production.on_click(
            lambda _, i=info: self._guard(lambda: self._ask_promote(i, "production"))
        )
        archive.on_click(lambda _, i=info: self._guard(lambda: self._ask_archive(i)))
        row = widgets.HBox([*cells, staging, production, archive], layout={"flex_flow": "row wrap"})
        row.add_class("nbtrack-version-row")
        row.add_class(f"nbtrack-version-{info.version}")
        return row

    def _explain(
        self,
        info: models.VersionInfo,
        staging: widgets.Button,
        production: widgets.Button,
        archive: widgets.Button,
    ) -> None:
        """Enable what may be done to ``info``; a disabled button says why in its tooltip."""
        bad = f"; its run {info.run_status}: confirming promotes it anyway" if _bad(info) else ""
        if self.read_only:
            for b in (staging, production, archive):
                b.disabled, b.tooltip = True, self.read_only
            return
        production.disabled = info.stage == "production"
        production.tooltip = (
            "already in production"
            if production.disabled
            else f"make version {info.version} the production model{bad}"
        )
        staging.disabled = info.stage in ("production", "staging")
        staging.tooltip = (
            f"already in {info.stage}"
            if staging.disabled
            else f"make version {info.version} the staging model{bad}"
        )
        archive.disabled = info.stage in ("production", "archived")
        archive.tooltip = {
            "production": "in production: promote another version, or roll back, first",
            "archived": "already archived",
        }.get(info.stage or "", f"archive version {info.version}")

    # -- moves -----------------------------------------------------------------------------------

    def _ask(self, question: str, move: Callable[[str], Any], what: str) -> None:
        self._pending = (move, what)
        self.question.value = f"<div style='{FONT};padding:4px 0'>{question}</div>"
        self.reason.value = ""
        self.confirm_button.description = f"confirm: {what}"
        self.confirm_box.layout.display = None
        self.result.value = ""

    def _ask_promote(self, info: models.VersionInfo, stage: str) -> None:
        holder = self._holder(stage)
        name, v = self.name, info.version
        question = f"Promote version <b>{_esc(v)}</b> of <b>{_esc(name)}</b> to {_esc(stage)}?"
        if holder and holder != v:
            question += f" Version {_esc(holder)} leaves {_esc(stage)} and is archived"
            question += " (it stays the rollback target)." if stage == "production" else "."
        force = _bad(info)
        if force:
            question += (
                f" <b style='color:#c62828'>Its run {_esc(info.run_status)}: confirming "
                "promotes it anyway.</b>"
            )
        self._ask(
            question,
            lambda why: models.promote(name, v, stage, why or None, force=force),
            f"promote {v} to {stage}",
        )

    def _ask_rollback(self) -> None:
        prod, previous, name = self._holder("production"), self._previous(), self.name
        question = (
            f"Roll back <b>{_esc(name)}</b>: put version <b>{_esc(previous)}</b> back in "
            f"production, replacing version {_esc(prod or 'none')}?"
        )
        self._ask(question, lambda why: models.rollback(name, why or None), "roll back")

    def _ask_archive(self, info: models.VersionInfo) -> None:
        name, v = self.name, info.version
        question = f"Archive version <b>{_esc(v)}</b> of <b>{_esc(name)}</b>?"
        if info.stage == "staging":
            question += " It leaves staging."
        self._ask(question, lambda why: models.archive(name, v, why or None), f"archive {v}")

    def _confirm(self) -> None:
        if self._pending is None:
            return
        move, _ = self._pending
        why = self.reason.value.strip()
        self._cancel()
        try:
            done = move(why)
        except PermissionDenied as e:
            self.read_only = str(e)
            self._say(str(e), ok=False)
        except NbtrackError as e:
            self._say(str(e), ok=False)
        else:
            self._say(str(done), ok=True)
        self.refresh()

    def _cancel(self) -> None:
        self._pending = None
        self.confirm_box.layout.display = "none"

    def _say(self, text: str, ok: bool) -> None:
        colour = "#2e7d32" if ok else "#c62828"
        cls = "nbtrack-ok" if ok else "nbtrack-error"
        self.result.value = (
            f"<div class='{cls}' style='{FONT};color:{colour};padding:2px 0'>{_esc(text)}</div>"
        )

    def confirm(self, reason: str = "") -> None:
        """Confirm the move asked for (what the "confirm" button does)."""
        self.reason.value = reason
        self._confirm()

    # -- the source run --------------------------------------------------------------------------

    def open_run(self, info: models.VersionInfo) -> None:
        """Open the version's run in the comparison panel (``nbtrack.compare``), below the rows;
        without it, say where the run is."""
        from IPython.display import HTML, display

        content = self.run_content(info)
        self.run_view.clear_output()
        with self.run_view:
            display(HTML(content) if isinstance(content, str) else content)

    def run_content(self, info: models.VersionInfo) -> Any:
        """The comparison panel of the experiment of the version's run, that run selected; or,
        when it cannot be had (no ``nbtrack.compare``, the run is gone), HTML naming the run."""
        import nbtrack

        experiment = models.experiment_of(info)
        compare = getattr(nbtrack, "compare", None)
        if compare is not None and experiment is not None:
            try:
                return compare(experiment, select=[info.run_id])
            except Exception as e:  # the comparison panel is optional; say where the run is
                self.errors.append(e)
        url = models.run_url(info)
        where = f" in experiment <b>{_esc(experiment)}</b>" if experiment else " (run not found)"
        link = f" · <a href='{_esc(url)}' target='_blank' rel='noopener'>MLflow</a>" if url else ""
        return (
            f"<div class='nbtrack-run-ref' style='{FONT}'>version {_esc(info.version)} comes from "
            f"run <code>{_esc(info.run_id)}</code>{where}{link}</div>"
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _on_pick(self, change: dict) -> None:
        if self._updating:
            return
        value = change["new"]
        if value in (None, NO_MODEL):
            self.name = None
            self._show_model()
        else:
            self._guard(lambda: self.select(value))

    def _guard(self, action: Callable[[], Any]) -> None:
        """Run a callback; what it raises is shown in the panel, never lost in the kernel log."""
        try:
            action()
        except NbtrackError as e:
            self._say(str(e), ok=False)
        except Exception as e:
            self.errors.append(e)
            self._say(f"{type(e).__name__}: {e}", ok=False)

    # -- output ----------------------------------------------------------------------------------

    def static_html(self) -> str:
        parts = [f"<div style='{FONT}'><b>nbtrack registry</b></div>"]
        if self.name is None:
            parts.append(models_table(self.summaries))
        else:
            parts.append(self.summary.value)
            if self.read_only:
                parts.append(f"<div style='{FONT};color:#b71c1c'>{_esc(self.read_only)}</div>")
            parts.append(versions_table(self.infos))
            parts.append(f"<div style='{FONT};margin-top:6px'><b>audit trail</b></div>")
            parts.append(audit_table(self.records))
        return "<div class='nbtrack-registry'>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        if self.name is None:
            return f"<nbtrack registry: {len(self.summaries)} registered models>"
        prod = self._holder("production")
        return (
            f"<nbtrack registry: model {self.name}, {len(self.infos)} versions shown, "
            f"production version {prod or 'none'}>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # ipywidgets gives text/plain and the widget view; the HTML is what renderers without a
        # widget manager (nbconvert, GitHub, a notebook opened without its kernel) show.
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.static_html()
        return bundle


def show(name: str | None = None) -> RegistryPanel:
    return RegistryPanel(name)


__all__ = ["RegistryPanel", "audit_table", "models_table", "show", "versions_table"]
