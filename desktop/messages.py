"""The one place where engine errors and notices become messages: a bar above the pages."""

from __future__ import annotations

import errno
import logging
import sqlite3
import traceback

from PySide6.QtCore import Qt, Signal
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


def describe(exc: BaseException) -> tuple[str, str, str | None]:
    """(level, message, details) for an exception: expected errors carry no traceback."""
    if isinstance(exc, Cancelled):
        return "info", str(exc) or "cancelled", None
    if isinstance(exc, StatcoderError):
        return "error", str(exc), None
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
    """Shows the latest error, warning or notice; multi-line engine messages are shown whole."""

    shown = Signal(str, str)  # level, message

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
        self.hide()

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
        self.shown.emit(level, message)

    def show_exception(self, exc: BaseException) -> None:
        level, message, details = describe(exc)
        if details:
            log.error("unexpected error\n%s", details)
        self.show_message(message, level, details)

    def clear(self) -> None:
        self.level = ""
        self.details = None
        self.label.clear()
        self.hide()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error", self.label.text(),
                          QMessageBox.StandardButton.Close, self)
        box.setDetailedText(self.details or "")
        box.exec()
