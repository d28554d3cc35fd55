"""A keyboard-only dialog to pick any code: type to search codes, titles and notes, arrows, Enter."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QListWidget, QListWidgetItem, QSplitter, QVBoxLayout, QWidget

from engine.classification import get_code, search_codes
from engine.errors import StatcoderError
from engine.store.project import Project

from .code_details import CodeDetails


class CodePicker(QDialog):
    """Opens with an empty search field listing `initial_codes` (e.g. the current suggestions): a
    pre-filled field held text such as the description being coded, which matched no code."""

    def __init__(self, project: Project, parent: QWidget | None = None, *, query: str = "",
                 initial_codes: Sequence[str] = (), leaves_only: bool = True) -> None:
        super().__init__(parent)
        self.project = project
        self.leaves_only = leaves_only
        self.initial_codes = list(dict.fromkeys(initial_codes))
        self.setWindowTitle("Pick a code")
        self.resize(900, 520)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Type to search codes, titles and notes; ↑/↓ to choose, Enter to pick, Esc to cancel."))
        self.search = QLineEdit(query)
        self.search.installEventFilter(self)
        self.results = QListWidget()
        self.results.itemActivated.connect(lambda _item: self.accept())
        self.details = CodeDetails(compact=True)
        self.results.currentItemChanged.connect(
            lambda cur, _prev: self.details.show_code(project, cur.data(Qt.ItemDataRole.UserRole) if cur else None))
        splitter = QSplitter()
        splitter.addWidget(self.results)
        splitter.addWidget(self.details)
        splitter.setSizes([420, 480])
        layout.addWidget(self.search)
        layout.addWidget(splitter, 1)
        self._timer = QTimer(self, singleShot=True, interval=80, timeout=self.run_search)
        self.search.textChanged.connect(lambda _t: self._timer.start())
        self.search.returnPressed.connect(self._enter)
        self.run_search()

    @property
    def chosen(self) -> str | None:
        item = self.results.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def run_search(self) -> None:
        query = self.search.text().strip()
        self.results.clear()
        if query:
            found = search_codes(self.project, query, limit=100, leaves_only=self.leaves_only)
        else:
            found = []
            for code in self.initial_codes:
                try:
                    found.append(get_code(self.project, code))
                except StatcoderError:
                    continue
        for code in found:
            item = QListWidgetItem(f"{code.code}   {code.title}")
            item.setData(Qt.ItemDataRole.UserRole, code.code)
            self.results.addItem(item)
        if self.results.count():
            self.results.setCurrentRow(0)

    def _enter(self) -> None:
        self._timer.stop()
        self.run_search()
        if self.chosen:
            self.accept()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        # Arrows move through the results while the cursor stays in the search field.
        if watched is self.search and event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            row = max(0, min(self.results.count() - 1, self.results.currentRow() + step))
            self.results.setCurrentRow(row)
            return True
        return super().eventFilter(watched, event)
