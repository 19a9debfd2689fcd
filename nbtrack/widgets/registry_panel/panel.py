"""The registry panel put together: the models list and a model's summary and audit trail
here, the version rows (``rows.py``) and the moves (``moves.py``); and ``show``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from nbtrack.errors import NbtrackError
from nbtrack.widgets._fallback import StaticFallback
from nbtrack.widgets._html import esc as _esc
from nbtrack.widgets.registry_panel.moves import MovesMixin
from nbtrack.widgets.registry_panel.rows import RowsMixin, _button
from nbtrack.widgets.registry_panel.source import RegistrySource
from nbtrack.widgets.registry_panel.tables import (
    FONT,
    audit_table,
    models_table,
    versions_table,
)

SHOWN_VERSIONS = 25  # newest versions in the panel (plus any that holds an alias)
NO_MODEL = "(choose a model)"
_log = logging.getLogger(__name__)


class RegistryPanel(StaticFallback, RowsMixin, MovesMixin, widgets.VBox):
    """The panel; see ``nbtrack.registry``. ``panel.select(name)`` shows a model,
    ``panel.refresh()`` reads the registry again; ``panel.infos`` are the versions shown.
    ``source`` is what it reads and does (see ``RegistrySource``)."""

    def __init__(self, source: RegistrySource, name: str | None = None):
        self.source = source
        self.name: str | None = None
        self.summaries: list[Any] = []
        self.infos: list[Any] = []
        self.records: list[dict[str, Any]] = []
        self.read_only: str | None = None  # why the store refuses moves, if it does
        self.errors: list[BaseException] = []  # what the callbacks swallowed (tests look here)
        self._updating = False
        self._build_moves()

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
        self.summaries = self.source.list_models()
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
        self.source.require(name)  # NotFound, before anything changes
        self.name = name
        self.read_only = self.source.can_edit(name)
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
        self.infos = self.source.versions(self.name, limit=SHOWN_VERSIONS)
        self.records = self.source.audit_records(self.name)
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
        alias = self.source.previous_alias()
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

    # -- the source run --------------------------------------------------------------------------

    def open_run(self, info: Any) -> None:
        """Open the version's run in the comparison panel (``nbtrack.compare``), below the rows;
        without it, say where the run is."""
        from IPython.display import HTML, display

        content = self.run_content(info)
        self.run_view.clear_output()
        with self.run_view:
            display(HTML(content) if isinstance(content, str) else content)

    def run_content(self, info: Any) -> Any:
        """The comparison panel of the experiment of the version's run, that run selected (the
        source's ``open_run``); or, when it cannot be had (no comparison panel, the run is gone),
        HTML naming the run."""
        experiment = self.source.experiment_of(info)
        open_run = self.source.open_run
        if open_run is not None and experiment is not None:
            try:
                shown = open_run(experiment, info.run_id)
            except Exception as e:  # the comparison panel is optional; say where the run is
                _log.debug(
                    "opening run %s in the comparison panel failed", info.run_id, exc_info=True
                )
                self.errors.append(e)
            else:
                if shown is not None:
                    return shown
        url = self.source.run_url(info)
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
            _log.debug("a registry panel action failed", exc_info=True)
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
            parts.append(versions_table(self.infos, self.source))
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


def show(source: RegistrySource, name: str | None = None) -> RegistryPanel:
    """The panel on ``source`` (the facade builds it from ``nbtrack.model_registry``)."""
    return RegistryPanel(source, name)
