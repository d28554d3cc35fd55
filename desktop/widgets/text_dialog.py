"""A dialog to edit one line of text, as wide as the text needs (QInputDialog's field was about 200 px)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

MIN_WIDTH = 560
MAX_WIDTH = 1100


class TextDialog(QDialog):
    def __init__(self, parent: QWidget | None, title: str, label: str, text: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(label))
        self.edit = QLineEdit(text)
        layout.addWidget(self.edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        needed = self.edit.fontMetrics().horizontalAdvance(text + "MMMMMMMMMM") + 40
        self.resize(max(MIN_WIDTH, min(MAX_WIDTH, needed)), self.sizeHint().height())


def ask_text(parent: QWidget | None, title: str, label: str, text: str = "") -> str | None:
    """The edited text, or None when cancelled."""
    dialog = TextDialog(parent, title, label, text)
    return dialog.edit.text() if dialog.exec() else None
