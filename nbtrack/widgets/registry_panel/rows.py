"""The registry panel's version rows: one row of cells and move buttons per version; a button
that cannot act is disabled and says why in its tooltip."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from nbtrack.widgets._html import esc as _esc
from nbtrack.widgets.registry_panel.tables import FONT, _metrics_text, _short, _stage_html, _when

# Widths of the version rows' columns, shared by the header and every row. Cells keep their
# width (no shrinking, so the columns line up); on a narrow output the move buttons wrap below.
COLUMNS = [
    ("version", "52px"),
    ("stage", "150px"),
    ("key metrics", "130px"),
    ("data", "80px"),
    ("run · created", "112px"),
]


def _button(description: str, tooltip: str, cls: str, width: str = "auto") -> widgets.Button:
    b = widgets.Button(
        description=description, tooltip=tooltip, layout={"width": width, "flex": "0 0 auto"}
    )
    b.add_class(cls)
    return b


class RowsMixin:
    """The rows part of ``RegistryPanel``."""

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

    def _row(self, info: Any) -> widgets.HBox:
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
            self._cell(_stage_html(info, self.source), widths["stage"]),
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
        info: Any,
        staging: widgets.Button,
        production: widgets.Button,
        archive: widgets.Button,
    ) -> None:
        """Enable what may be done to ``info``; a disabled button says why in its tooltip."""
        bad = (
            f"; its run {info.run_status}: confirming promotes it anyway"
            if self.source.refused(info)
            else ""
        )
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
