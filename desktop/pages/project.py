"""Project page: new, open and recent projects; where the file is, its size and contents at a glance."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout,
)

from engine.store.project import Project

from ..context import AppContext, Page
from ..settings import recent_projects

SUMMARY_ROWS = [
    ("classification", "Classification"),
    ("codes", "Codes"),
    ("leaf_codes", "Leaf codes"),
    ("links", "Excludes links"),
    ("real_train", "Real texts (train)"),
    ("real_test", "Real texts (test)"),
    ("generation_runs", "Generation runs"),
    ("samples", "Synthetic samples"),
    ("accepted_samples", "Accepted samples"),
    ("models", "Trained models"),
    ("evaluations", "Evaluations"),
    ("corrections", "Coding decisions"),
]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


class ProjectPage(Page):
    key = "project"
    title = "Project"
    needs_project = False

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        layout = QVBoxLayout(self)
        heading = QLabel("<h2>Project</h2>A project is one file that holds the classification, the real and "
                         "synthetic texts, the trained models and every coding decision. Copy it to move a project.")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New project…  (Ctrl+N)")
        self.open_button = QPushButton("Open project…  (Ctrl+O)")
        self.new_button.clicked.connect(lambda: self.window().new_project_dialog())
        self.open_button.clicked.connect(lambda: self.window().open_project_dialog())
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

        body = QHBoxLayout()
        recent_box = QGroupBox("Recent projects (Enter or double-click to open)")
        recent_layout = QVBoxLayout(recent_box)
        self.recent = QListWidget()
        self.recent.itemActivated.connect(self._open_recent)
        recent_layout.addWidget(self.recent)
        body.addWidget(recent_box, 1)

        self.summary_box = QGroupBox("This project")
        form = QFormLayout(self.summary_box)
        self.path_label = QLabel()
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label.setWordWrap(True)
        self.size_label = QLabel()
        form.addRow("File", self.path_label)
        form.addRow("Size", self.size_label)
        self.values: dict[str, QLabel] = {}
        for key, label in SUMMARY_ROWS:
            self.values[key] = QLabel()
            form.addRow(label, self.values[key])
        body.addWidget(self.summary_box, 1)
        layout.addLayout(body, 1)
        ctx.data_changed.connect(lambda _what: self.refresh())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.refresh()
        super().showEvent(event)

    def on_project_changed(self, project: Project | None) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.recent.clear()
        for path in recent_projects():
            item = QListWidgetItem(f"{path.name}    {path.parent}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.recent.addItem(item)
        project = self.project
        self.summary_box.setEnabled(project is not None)
        if project is None:
            self.path_label.setText("no project open: create one or open a recent one")
            self.size_label.clear()
            for label in self.values.values():
                label.clear()
            return
        summary = self.ctx.guarded(project.summary)()
        if summary is None:
            return
        self.path_label.setText(summary["path"])
        self.size_label.setText(human_size(summary["size_bytes"]) + f" (schema version {summary['schema_version']})")
        for key, _ in SUMMARY_ROWS:
            value = summary.get(key)
            if key == "classification":
                text = value.get("name", "?") if value else "none yet: import one on the Classification page"
            else:
                text = f"{value:,}" if isinstance(value, int) else str(value)
            self.values[key].setText(text)

    def _open_recent(self, item: QListWidgetItem) -> None:
        self.window().open_project(Path(item.data(Qt.ItemDataRole.UserRole)))
