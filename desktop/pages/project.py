"""Project page: new, open and recent projects; the workflow as a checklist with the next step; the file at a glance."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout,
)

from engine.changes import Changes
from engine.store.project import Project
from engine.workflow import WorkflowStep, next_step, workflow_steps

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
    ("models", "Coders (trained)"),
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

        self.workflow_box = QGroupBox("Workflow")
        workflow = QVBoxLayout(self.workflow_box)
        self.steps_grid = QGridLayout()
        self.steps_grid.setColumnStretch(2, 1)
        workflow.addLayout(self.steps_grid)
        next_row = QHBoxLayout()
        self.next_button = QPushButton()
        self.next_button.setStyleSheet("font-weight: bold; padding: 6px 14px;")
        self.next_button.clicked.connect(self._go_next)
        next_row.addWidget(self.next_button)
        next_row.addStretch(1)
        workflow.addLayout(next_row)
        layout.addWidget(self.workflow_box)
        self.steps: list[WorkflowStep] = []
        self.next: WorkflowStep | None = None
        self.step_rows: dict[str, tuple[QLabel, QLabel, QLabel, QPushButton]] = {}

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
        ctx.changed.connect(self._changed)

    def _changed(self, _changes: Changes) -> None:
        if self.isVisible():    # counted again when the page is shown, not after every decision elsewhere
            self.refresh()

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
        self.refresh_workflow()
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

    # the workflow checklist ---------------------------------------------------------------------
    def refresh_workflow(self) -> None:
        project = self.project
        self.workflow_box.setVisible(project is not None)
        if project is None:
            self.steps, self.next = [], None
            return
        steps = self.ctx.guarded(workflow_steps)(project)
        if steps is None:
            return
        self.steps, self.next = steps, next_step(steps)
        for number, step in enumerate(steps, start=1):
            if step.key not in self.step_rows:
                mark, title, detail = QLabel(), QLabel(), QLabel()
                detail.setWordWrap(True)
                go = QPushButton("Open")
                go.setFlat(True)
                go.clicked.connect(lambda _c=False, key=step.key: self._go(key))
                for col, widget in enumerate((mark, title, detail, go)):
                    self.steps_grid.addWidget(widget, number - 1, col)
                self.step_rows[step.key] = (mark, title, detail, go)
            mark, title, detail, go = self.step_rows[step.key]
            mark.setText("✔" if step.done else ("➜" if step is self.next else "○"))
            mark.setStyleSheet("color:#2e7d32; font-size:13pt;" if step.done else "color:#888; font-size:13pt;")
            optional = " <span style='color:gray'>(optional)</span>" if step.optional else ""
            bold = step is self.next
            title.setText(f"{number}. {'<b>' if bold else ''}{step.title}{'</b>' if bold else ''}{optional}")
            detail.setText(step.detail)
            go.setToolTip(f"{step.action}: open the {step.page.replace('train', 'Train & evaluate')} page")
        if self.next is None:
            self.next_button.setText("Everything is set up: code texts  →")
        else:
            self.next_button.setText(f"Next: {self.next.action}  →")

    def step(self, key: str) -> WorkflowStep:
        return next(step for step in self.steps if step.key == key)

    def _go(self, key: str) -> None:
        self.ctx.show_page.emit(self.step(key).page)

    def _go_next(self) -> None:
        self.ctx.show_page.emit(self.next.page if self.next is not None else "code")

    def _open_recent(self, item: QListWidgetItem) -> None:
        self.window().open_project(Path(item.data(Qt.ItemDataRole.UserRole)))
