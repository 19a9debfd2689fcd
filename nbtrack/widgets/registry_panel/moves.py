"""The registry panel's moves: promote, roll back and archive, each asked for, confirmed (with
an optional reason for the audit trail) and its result shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from nbtrack.errors import NbtrackError, PermissionDenied
from nbtrack.widgets._html import esc as _esc
from nbtrack.widgets.registry_panel.rows import _button
from nbtrack.widgets.registry_panel.tables import FONT


class MovesMixin:
    """The moves part of ``RegistryPanel``: the confirmation box and what it confirms."""

    def _build_moves(self) -> None:
        self._pending: tuple[Callable[[str], Any], str] | None = None  # move awaiting confirm
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

    def _ask(self, question: str, move: Callable[[str], Any], what: str) -> None:
        self._pending = (move, what)
        self.question.value = f"<div style='{FONT};padding:4px 0'>{question}</div>"
        self.reason.value = ""
        self.confirm_button.description = f"confirm: {what}"
        self.confirm_box.layout.display = None
        self.result.value = ""

    def _ask_promote(self, info: Any, stage: str) -> None:
        holder = self._holder(stage)
        name, v = self.name, info.version
        question = f"Promote version <b>{_esc(v)}</b> of <b>{_esc(name)}</b> to {_esc(stage)}?"
        if holder and holder != v:
            question += f" Version {_esc(holder)} leaves {_esc(stage)} and is archived"
            question += " (it stays the rollback target)." if stage == "production" else "."
        force = self.source.refused(info)
        if force:
            question += (
                f" <b style='color:#c62828'>Its run {_esc(info.run_status)}: confirming "
                "promotes it anyway.</b>"
            )
        self._ask(
            question,
            lambda why: self.source.promote(name, v, stage=stage, reason=why or None, force=force),
            f"promote {v} to {stage}",
        )

    def _ask_rollback(self) -> None:
        prod, previous, name = self._holder("production"), self._previous(), self.name
        question = (
            f"Roll back <b>{_esc(name)}</b>: put version <b>{_esc(previous)}</b> back in "
            f"production, replacing version {_esc(prod or 'none')}?"
        )
        self._ask(question, lambda why: self.source.rollback(name, reason=why or None), "roll back")

    def _ask_archive(self, info: Any) -> None:
        name, v = self.name, info.version
        question = f"Archive version <b>{_esc(v)}</b> of <b>{_esc(name)}</b>?"
        if info.stage == "staging":
            question += " It leaves staging."
        self._ask(
            question, lambda why: self.source.archive(name, v, reason=why or None), f"archive {v}"
        )

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
