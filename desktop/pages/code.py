"""Code page: the keyboard-only coding panel (type, see the top 5, Enter accepts) and batch coding of a CSV."""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QHeaderView, QLabel, QLineEdit, QListWidget, QSplitter, QTableWidget,
    QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from engine.store.project import Project

from ..coding_backend import CodingBackend, SuggestionLike, SuggestThread, engine_backend
from ..context import AppContext, Page
from ..widgets.code_details import CodeDetails
from ..widgets.code_picker import CodePicker
from .batch import BatchPanel

SUGGEST_DELAY_MS = 60
TOP_K = 5


def format_path(path) -> str:
    """The ancestors' codes, root first; engine paths are (code, title) pairs."""
    if isinstance(path, str):
        return path
    return " › ".join(str(p[0] if isinstance(p, tuple) else getattr(p, "code", p)) for p in path or [])


class CodingPanel(QWidget):
    """Type a description; ↑/↓ choose among the top 5, Enter accepts, Ctrl+K picks any other code."""

    decided = Signal(str, str, str)  # text, code, kind

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.backend: CodingBackend | None = None
        self.suggestions: list[SuggestionLike] = []
        self.suggested_text = ""
        self.last_latency_ms: float | None = None
        self.decisions = 0
        layout = QVBoxLayout(self)
        self.model_label = QLabel()
        layout.addWidget(self.model_label)
        self.text = QLineEdit()
        self.text.setPlaceholderText("Type a description of the activity…   ↑/↓ choose · Enter accept · "
                                     "Ctrl+K another code · Alt+1…5 accept that row")
        font = QFont(self.text.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.text.setFont(font)
        self.text.installEventFilter(self)
        self.text.textChanged.connect(self._text_changed)
        self.text.returnPressed.connect(self.accept_current)
        layout.addWidget(self.text)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Probability", "Code", "Title", "Path"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.currentCellChanged.connect(lambda row, *_: self._highlight(row))
        self.table.cellDoubleClicked.connect(lambda row, _col: self.accept_row(row))
        self.details = CodeDetails(compact=True)
        splitter = QSplitter()
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setSizes([640, 480])
        layout.addWidget(splitter, 1)
        self.status = QLabel()
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Recent decisions:"))
        self.history = QListWidget()
        self.history.setMaximumHeight(120)
        self.history.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout.addWidget(self.history)

        self.suggester = SuggestThread(self)
        QApplication.instance().aboutToQuit.connect(self.shutdown)
        self.suggester.worker.ready.connect(self._suggestions_ready)
        self.suggester.worker.failed.connect(lambda _id, exc: self.ctx.report(exc))
        self._timer = QTimer(self, singleShot=True, interval=SUGGEST_DELAY_MS, timeout=self._request)
        QShortcut(QKeySequence("Ctrl+K"), self, activated=self.pick_other)
        for row in range(TOP_K):
            QShortcut(QKeySequence(f"Alt+{row + 1}"), self, activated=lambda r=row: self.accept_row(r))

    # backend ----------------------------------------------------------------------------------
    def set_backend(self, backend: CodingBackend | None) -> None:
        self.backend = backend
        self.suggester.set_backend(backend)
        self.text.setEnabled(backend is not None)
        if backend is None:
            self.model_label.setText("No trained coder yet: train one on the Train & evaluate page.")
        else:
            self.model_label.setText(f"Coder: {backend.describe()}")
        self._show([])
        if self.text.text().strip():
            self._request()

    # suggestions ------------------------------------------------------------------------------
    def _text_changed(self, _text: str) -> None:
        self._timer.start()

    def _request(self) -> None:
        if self.backend is not None:
            self.suggester.request(self.text.text(), TOP_K)

    def _suggestions_ready(self, _request_id: int, text: str, suggestions: list, elapsed_ms: float) -> None:
        if text != self.text.text():
            return  # the user typed on; a newer request is on its way
        self.last_latency_ms = elapsed_ms
        self.suggested_text = text
        self._show(suggestions)

    def _show(self, suggestions: Sequence[SuggestionLike]) -> None:
        self.suggestions = list(suggestions)
        self.table.setRowCount(len(self.suggestions))
        for row, s in enumerate(self.suggestions):
            values = [f"{s.probability:.0%}", s.code, s.title, format_path(s.path)]
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)
        if self.suggestions:
            self.table.setCurrentCell(0, 0)
        else:
            self.details.show_code(None, None)

    def _highlight(self, row: int) -> None:
        if 0 <= row < len(self.suggestions):
            self.details.show_code(self.ctx.project, self.suggestions[row].code)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.text and event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            if self.suggestions:
                step = -1 if event.key() == Qt.Key.Key_Up else 1
                row = max(0, min(len(self.suggestions) - 1, self.table.currentRow() + step))
                self.table.setCurrentCell(row, 0)
            return True
        return super().eventFilter(watched, event)

    # decisions --------------------------------------------------------------------------------
    def accept_current(self) -> None:
        self.accept_row(self.table.currentRow())

    def accept_row(self, row: int) -> None:
        if self.suggested_text != self.text.text():
            # Enter pressed before the newest suggestions arrived: never accept a stale list.
            self._timer.stop()
            self._request()
            self.status.setText("Suggestions are updating; press Enter again.")
            return
        if 0 <= row < len(self.suggestions):
            self.decide(self.suggestions[row].code)

    def pick_other(self) -> str | None:
        if self.ctx.project is None or self.backend is None:
            return None
        picker = CodePicker(self.ctx.project, self, query=self.text.text())
        self.open_picker_hook(picker)
        if picker.exec() and picker.chosen:
            self.decide(picker.chosen)
            return picker.chosen
        return None

    # Tests replace this to drive the modal picker; by default it does nothing.
    open_picker_hook: Callable[[CodePicker], None] = staticmethod(lambda picker: None)

    def decide(self, code: str) -> None:
        text = self.text.text().strip()
        if not text or self.backend is None:
            return
        try:
            kind = self.backend.record(text, code, self.suggestions)
        except Exception as exc:  # noqa: BLE001 - engine errors go to the message bar
            self.ctx.report(exc)
            return
        self.decisions += 1
        self.history.insertItem(0, f"{code}  ←  {text}   ({kind})")
        self.status.setText(f"Stored {code} as a {kind}. {self.decisions} decisions this session.")
        self.text.clear()
        self._show([])
        self.ctx.data_changed.emit("corrections")
        self.decided.emit(text, code, kind)

    def shutdown(self) -> None:
        self.suggester.stop()


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
        layout.addWidget(self.tabs)
        ctx.data_changed.connect(self._data_changed)

    def on_project_changed(self, project: Project | None) -> None:
        self.reload_backend()

    def _data_changed(self, what: str) -> None:
        if what == "models":
            self.reload_backend()

    def reload_backend(self) -> None:
        backend = self.ctx.guarded(self.backend_factory)(self.project) if self.project is not None else None
        self.panel.set_backend(backend)
        self.batch.set_backend(backend)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.panel.text.setFocus()

    def shutdown(self) -> None:
        self.panel.shutdown()
        self.batch.panel.shutdown()
