"""A path field with a Browse button, shared by the import dialogs and the batch tab of the Code page."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

# Windows-1252 is what Excel writes on Windows in Western Europe; latin-1 and UTF-16 come next.
ENCODINGS = ["utf-8", "cp1252", "latin-1", "utf-16"]


def encoding_box() -> QComboBox:
    """The encoding choice beside a file field (the import dialogs and the batch tab)."""
    box = QComboBox()
    box.addItems(ENCODINGS)
    box.setToolTip("The file's character encoding: try cp1252 for a CSV saved by Excel on Windows")
    return box


def file_and_encoding(caption: str, file_filter: str, reload: Callable[[], None]) -> tuple[FileChooser, QComboBox]:
    """A file field and its encoding choice; `reload()` runs when either changes (to preview the file)."""
    chooser = FileChooser(caption, file_filter)
    chooser.edit.editingFinished.connect(reload)
    encoding = encoding_box()
    encoding.currentTextChanged.connect(lambda _t: reload())
    return chooser, encoding


class FileChooser(QWidget):
    """A path field with a Browse button."""

    def __init__(self, caption: str, file_filter: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(caption, file_filter))
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self, caption: str, file_filter: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, caption, str(Path.home()), file_filter)
        if path:
            self.edit.setText(path)
            self.edit.editingFinished.emit()

    @property
    def path(self) -> str:
        return self.edit.text().strip()
