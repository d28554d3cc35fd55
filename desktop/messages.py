"""The one place where engine errors and notices become messages: a bar above the pages."""

from __future__ import annotations

import errno
import logging
import sqlite3
import traceback

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget,
)

from engine.atomic import os_error_message
from engine.errors import Cancelled, StatcoderError
from engine.store.project import describe_db_error

log = logging.getLogger("statcoder.desktop")

STYLES = {
    "error": "background:#fdecea; color:#611a15; border:1px solid #f5c2c0;",
    "warning": "background:#fff4e5; color:#663c00; border:1px solid #ffd8a8;",
    "info": "background:#e8f4fd; color:#0d3c61; border:1px solid #b6dcf7;",
}


# How the GUI says an error's hint (engine.errors.Hint): a field or a page, never a command to type.
GUI_HINTS = {
    "encoding": "choose the encoding {value} in the Encoding field and try again",
    "add_llm": "add one on the LLMs page (Add GGUF file… or Install the default)",
    "train_coder": "train one on the Train & evaluate page",
    "threshold": "set a threshold",
    "examples": "choose the examples when the run is created, or leave the '{value}' strategy out",
    "cancel_run": "or cancel it on the Generate page",
}


def hint_text(exc: StatcoderError) -> str:
    hint = exc.hint
    return GUI_HINTS.get(hint.action, "").format(value=hint.value) if hint else ""


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 sample', '2 samples' (with thousands separators)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def describe(exc: BaseException) -> tuple[str, str, str | None]:
    """(level, message, details) for an exception: expected errors carry no traceback."""
    if isinstance(exc, Cancelled):
        return "info", str(exc) or "cancelled", None
    if isinstance(exc, StatcoderError):
        hint = hint_text(exc)
        return "error", f"{exc}; {hint}" if hint else str(exc), None
    if isinstance(exc, sqlite3.DatabaseError):
        # A read-only, full, damaged or busy project file: the file's state, not a bug.
        message = describe_db_error(exc)
        if message is not None:
            return "error", message[0].upper() + message[1:], None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS):
        return "error", os_error_message(exc, exc.filename or "a file"), None
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "error", f"Unexpected error ({type(exc).__name__}): {exc}", details


def ask_yes_no(parent: QWidget | None, title: str, question: str) -> bool:
    """A yes/no question; tests replace this function to answer without a modal dialog."""
    answer = QMessageBox.question(parent, title, question,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class MessageBar(QWidget):
    """Shows the latest error, warning or notice; multi-line engine messages are shown whole.

    It floats over the bottom of the page instead of taking a row of the layout: a bar that appeared and
    went pushed the page down and up by its height, and clicks meant for a button landed on the next
    one. It clears itself after a while (longer for warnings and errors); an unexpected error, which
    has details to read, stays until dismissed. The mouse over it holds it.
    """

    shown = Signal(str, str)  # level, message
    TIMEOUTS_MS = {"info": 8_000, "warning": 15_000, "error": 30_000}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)   # messages quote user text: never markup
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = QPushButton("Details…")
        self.details_button.clicked.connect(self._show_details)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss (Esc)")
        close.clicked.connect(self.clear)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.details_button)
        layout.addWidget(close)
        self.level = ""
        self.details: str | None = None
        self.timer = QTimer(self, singleShot=True, timeout=self.clear)
        self.host: QWidget | None = None
        self.hide()

    def attach(self, host: QWidget) -> None:
        """Float over the bottom of `host`, following its size."""
        self.host = host
        self.setParent(host)
        host.installEventFilter(self)
        self._place()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.host and event.type() == QEvent.Type.Resize:
            self._place()
        return super().eventFilter(watched, event)

    def _place(self) -> None:
        if self.host is None:
            return
        width = max(200, self.host.width() - 12)
        layout = self.layout()
        height = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        height = max(height, layout.totalMinimumSize().height())
        # At the bottom of the page: the fields a message is about (a file, its encoding) are at the top.
        self.setGeometry(6, max(0, self.host.height() - height - 6), width, height)
        self.raise_()

    def enterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()   # reading it: keep it
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._arm()
        super().leaveEvent(event)

    def _arm(self) -> None:
        if self.level and self.details is None:
            self.timer.start(self.TIMEOUTS_MS.get(self.level, 10_000))

    @property
    def text(self) -> str:
        return self.label.text()

    def show_message(self, message: str, level: str = "info", details: str | None = None) -> None:
        self.level = level
        self.details = details
        self.label.setText(message)
        self.setStyleSheet(f"#messageBar {{ {STYLES[level]} border-radius:4px; }}")
        self.details_button.setVisible(details is not None)
        self.show()
        self._place()
        self._arm()
        self.shown.emit(level, message)

    def show_exception(self, exc: BaseException) -> None:
        level, message, details = describe(exc)
        if details:
            log.error("unexpected error\n%s", details)
        self.show_message(message, level, details)

    def clear(self) -> None:
        self.timer.stop()
        self.level = ""
        self.details = None
        self.label.clear()
        self.hide()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error", self.label.text(),
                          QMessageBox.StandardButton.Close, self)
        box.setDetailedText(self.details or "")
        box.exec()
