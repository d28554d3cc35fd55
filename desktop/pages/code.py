"""Code page: the keyboard-only coding panel (type, see the top 5, decide by key), batch coding of a CSV, and
the uncoded texts: labelled by the coder (and the LLM judge), the least confident reviewed one at a time."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QTabWidget, QVBoxLayout

from engine.changes import Changes
from engine.store.project import Project

from ..coding_backend import CodingBackend, engine_backend
from ..context import AppContext, Page
from ..widgets.coding_panel import CodingPanel
from .batch import BatchPanel
from .uncoded import UncodedPanel


class CodePage(Page):
    key = "code"
    title = "Code"

    def __init__(self, ctx: AppContext, *, backend_factory: Callable[[Project | None], CodingBackend | None] = engine_backend) -> None:
        super().__init__(ctx)
        self.backend_factory = backend_factory
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.panel = CodingPanel(ctx)
        self.tabs.addTab(self.panel, "One at a time")
        self.batch = BatchPanel(ctx)
        self.tabs.addTab(self.batch, "Batch file")
        self.uncoded = UncodedPanel(ctx)
        self.tabs.addTab(self.uncoded, "Uncoded texts")
        layout.addWidget(self.tabs)
        ctx.changed.connect(self._changed)

    def on_project_changed(self, project: Project | None) -> None:
        self.reload_backend()

    def _changed(self, changes: Changes) -> None:
        if changes.touches("models"):
            self.reload_backend()

    def reload_backend(self) -> None:
        backend = self.ctx.guarded(self.backend_factory)(self.project) if self.project is not None else None
        self.panel.set_backend(backend)
        self.batch.set_backend(backend)
        self.uncoded.set_backend(backend)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.panel.text.setFocus()

    def shutdown(self) -> None:
        self.panel.shutdown()
        self.batch.panel.shutdown()
        self.uncoded.panel.shutdown()
