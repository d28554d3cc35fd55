"""Generate page: choose codes, strategies, conditions, quota and seed; run, pause and resume; watch it fill."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QCheckBox, QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
    QLineEdit, QListWidget, QPushButton, QRadioButton, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)
from PySide6.QtGui import QColor

from engine.changes import Changes
from engine.classification import leaf_codes
from engine.curate import balance_report
from engine.generate import (DEFAULT_GRID, DEFAULT_STRATEGIES, PAUSED, STRATEGIES, GenerationParams, create_run,
                             list_runs, run_generation, run_settings)
from engine.classification import leaf_codes_under
from engine.llm import get_default_model
from engine.store.project import Project
from engine.curate.samples import condition_coverage, samples_after

from ..context import AppContext, Page
from ..widgets.progress import JobProgress
from .models import backend_settings

POLL_MS = 500
STREAM_ROWS = 200


class GeneratePage(Page):
    key = "generate"
    title = "Generate"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        layout = QVBoxLayout(self)
        setup = QHBoxLayout()
        codes_box = QGroupBox("Codes")
        codes = QVBoxLayout(codes_box)
        self.all_codes = QRadioButton("All leaf codes")
        self.subtree = QRadioButton("Leaf codes under:")
        self.under_quota = QRadioButton("Codes under quota in earlier runs")
        self.under_quota.setToolTip("Codes with fewer accepted samples than the quota below")
        group = QButtonGroup(self)
        for button in (self.all_codes, self.subtree, self.under_quota):
            group.addButton(button)
            codes.addWidget(button)
        self.subtree.setChecked(True)
        self.subtree_codes = QLineEdit("10, 11")
        codes.insertWidget(2, self.subtree_codes)
        setup.addWidget(codes_box)

        strategies_box = QGroupBox("Strategies")
        strategies = QGridLayout(strategies_box)
        self.strategy_boxes: dict[str, QCheckBox] = {}
        for i, name in enumerate(STRATEGIES):
            box = QCheckBox(name)
            box.setChecked(name in DEFAULT_STRATEGIES)
            self.strategy_boxes[name] = box
            strategies.addWidget(box, i // 2, i % 2)
        setup.addWidget(strategies_box)

        grid_box = QGroupBox("Conditions (grid strategy): one dimension per row, values separated by ';'")
        grid_layout = QVBoxLayout(grid_box)
        self.grid = QTableWidget(len(DEFAULT_GRID), 2)
        self.grid.setHorizontalHeaderLabels(["dimension", "values"])
        self.grid.horizontalHeader().setStretchLastSection(True)
        for r, (dimension, values) in enumerate(DEFAULT_GRID.items()):
            self.grid.setItem(r, 0, QTableWidgetItem(dimension))
            self.grid.setItem(r, 1, QTableWidgetItem("; ".join(values)))
        self.grid.setMaximumHeight(150)
        grid_layout.addWidget(self.grid)

        options_box = QGroupBox("Run")
        options = QFormLayout(options_box)
        self.quota, self.seed, self.per_request = QSpinBox(), QSpinBox(), QSpinBox()
        self.quota.setRange(1, 10_000)
        self.quota.setValue(24)
        self.seed.setRange(0, 2**31 - 1)
        self.per_request.setRange(1, 50)
        self.per_request.setValue(GenerationParams().per_request)
        self.name = QLineEdit()
        options.addRow("Samples per code", self.quota)
        options.addRow("Seed", self.seed)
        options.addRow("Phrases per request", self.per_request)
        options.addRow("Name", self.name)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        options.addRow(self.model_label)
        setup.addWidget(options_box, 1)
        layout.addLayout(setup)
        layout.addWidget(grid_box)

        controls = QHBoxLayout()
        self.start_button = QPushButton("Start new run")
        self.start_button.clicked.connect(self.start_new)
        self.runs = QComboBox()
        self.resume_button = QPushButton("Resume run")
        self.resume_button.clicked.connect(self.resume_selected)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop after the current request; the run resumes exactly where it stopped")
        self.pause_button.clicked.connect(self.pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.stop("cancelled by the user"))
        for widget in (self.start_button, QLabel("  Runs:"), self.runs, self.resume_button, self.pause_button,
                       self.cancel_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        layout.addLayout(controls)
        self.progress = JobProgress(cancel_text="Pause", cancel_reason=PAUSED, cancelling_text="Pausing…")
        layout.addWidget(self.progress)

        splitter = QSplitter()
        stream_box = QWidget()
        stream_layout = QVBoxLayout(stream_box)
        stream_layout.setContentsMargins(0, 0, 0, 0)
        stream_layout.addWidget(QLabel("Newest samples"))
        self.stream = QListWidget()
        stream_layout.addWidget(self.stream)
        coverage_box = QWidget()
        coverage_layout = QVBoxLayout(coverage_box)
        coverage_layout.setContentsMargins(0, 0, 0, 0)
        self.coverage_label = QLabel("Coverage: samples per code and condition")
        coverage_layout.addWidget(self.coverage_label)
        self.coverage = QTableWidget()
        self.coverage.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        coverage_layout.addWidget(self.coverage)
        splitter.addWidget(stream_box)
        splitter.addWidget(coverage_box)
        splitter.setSizes([420, 700])
        layout.addWidget(splitter, 1)

        self.job = None
        self.run_id: int | None = None
        self.last_sample_id = 0
        self.last_result = None
        self._poll = QTimer(self, interval=POLL_MS, timeout=self.poll)
        self._succeeded = False
        ctx.changed.connect(self._changed)
        self._update_buttons()

    # setup --------------------------------------------------------------------------------------
    def _changed(self, changes: Changes) -> None:
        if changes.touches("llm"):
            self._describe_model()
        if changes.touches("runs") and self.job is None:
            self.refresh_runs()

    def on_project_changed(self, project: Project | None) -> None:
        self.refresh_runs()
        self._describe_model()
        self.stream.clear()
        self.coverage.clear()

    def _describe_model(self) -> None:
        settings = backend_settings(self.project, with_model_path=True) if self.project else None
        if settings is None:
            self.model_label.clear()
        elif settings.kind == "openai":
            self.model_label.setText(f"Server {settings.base_url} ({settings.parallel} parallel)")
        else:
            model = settings.model_path.rsplit("/", 1)[-1] if settings.model_path else "none: add one on Models"
            hw = settings.hardware
            self.model_label.setText(f"Model: {model}<br>{hw.threads} threads, context {hw.n_ctx}, "
                                     f"{hw.n_gpu_layers} GPU layers, {hw.parallel} parallel")

    def refresh_runs(self) -> None:
        self.runs.clear()
        for status in (list_runs(self.project) if self.project else []):
            self.runs.addItem(f"#{status.run_id} {status.name}: {status.status}, {status.done}/{status.total}",
                              status.run_id)
        if self.run_id is not None:
            self.runs.setCurrentIndex(max(0, self.runs.findData(self.run_id)))
        self._update_buttons()

    def chosen_codes(self) -> list[str]:
        project = self.project
        if self.all_codes.isChecked():
            return [code.code for code in leaf_codes(project)]
        if self.under_quota.isChecked():
            return sorted(balance_report(project, quota=self.quota.value()).under_quota)
        tops = [s.strip() for s in self.subtree_codes.text().replace(";", ",").split(",") if s.strip()]
        return leaf_codes_under(project, tops)

    def grid_values(self) -> dict[str, list[str]]:
        grid: dict[str, list[str]] = {}
        for r in range(self.grid.rowCount()):
            key, values = self.grid.item(r, 0), self.grid.item(r, 1)
            if key and values and key.text().strip():
                grid[key.text().strip()] = [v.strip() for v in values.text().split(";") if v.strip()]
        return grid

    def params(self) -> GenerationParams:
        return GenerationParams(per_request=self.per_request.value(), grid=self.grid_values())

    # running ------------------------------------------------------------------------------------
    def start_new(self) -> None:
        project = self.project
        if project is None:
            return
        codes = self.ctx.guarded(self.chosen_codes)()
        if not codes:
            self.ctx.notify("No codes to generate for: check the code choice.", "warning")
            return
        strategies = [name for name, box in self.strategy_boxes.items() if box.isChecked()]
        settings = backend_settings(project, with_model_path=False)
        model = get_default_model() if settings.kind == "llama-cpp" else None
        if settings.kind == "llama-cpp" and model is None:
            self.ctx.notify("No LLM yet: add a GGUF file on the LLMs page.", "warning")
            return
        run_id = self.ctx.guarded(create_run)(
            project, codes=codes, quota=self.quota.value(), strategies=strategies, seed=self.seed.value(),
            model=model.sha256 if model else None, backend=settings, params=self.params(),
            name=self.name.text().strip() or None)
        if run_id is not None:
            self.run(run_id)

    def resume_selected(self) -> None:
        run_id = self.runs.currentData()
        if run_id is not None:
            self.run(int(run_id))

    def run(self, run_id: int) -> None:
        project = self.project
        self.run_id = run_id
        self.last_sample_id = 0
        self._succeeded = False
        self.stream.clear()
        self.job = self.ctx.run(f"Generation run {run_id}", lambda progress, cancel: run_generation(
            project, run_id, progress=progress, cancel=cancel), on_success=self._finished,
            on_finish=self._stopped)
        self.progress.attach(self.job, f"Generation run {run_id}: loading the model…")
        self.refresh_runs()
        self._poll.start()
        self._update_buttons()

    def stop(self, reason: str) -> None:
        if self.job is not None:
            self.job.cancel(reason)

    def pause(self) -> None:
        """Stop within the current request; the button says so until the run has stopped, listed as paused."""
        if self.job is None:
            return
        self.stop(PAUSED)
        self.pause_button.setText("Pausing…")
        self.pause_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.progress.show_stopping()

    def _finished(self, result) -> None:
        self._succeeded = True
        self.last_result = result
        self.ctx.notify(f"Run {result.run_id} finished: {result.samples:,} samples ({result.written:,} new) in "
                        f"{result.seconds:.0f} s, {result.samples_per_s:.2f} samples/s, "
                        f"{result.tokens_per_s:.1f} tokens/s, {result.parallel} parallel on {result.device}."
                        + (f" {len(result.shortfall)} codes short of the quota." if result.shortfall else ""))

    def _stopped(self) -> None:
        self._poll.stop()
        self.job = None
        self.poll()
        self.refresh_runs()
        self.pause_button.setText("Pause")
        if not self._succeeded:  # a finished run's result announced its changes already
            self.ctx.apply_changes(Changes(runs=True, samples=True))
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.job is not None
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running and self.runs.count() > 0)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)

    # live view ----------------------------------------------------------------------------------
    def poll(self) -> None:
        """Read what the worker has written: the newest samples and the coverage matrix (short queries)."""
        if self.project is None or self.run_id is None:
            return
        new = samples_after(self.project, self.run_id, self.last_sample_id, limit=50)
        for sample in new:
            self.stream.insertItem(0, f"{sample.code}  {sample.text}   [{sample.strategy}]")
            self.last_sample_id = sample.id
        while self.stream.count() > STREAM_ROWS:
            self.stream.takeItem(self.stream.count() - 1)
        if new:
            grid = run_settings(self.project, self.run_id)[1].grid
            self.show_coverage(condition_coverage(self.project, self.run_id, grid.keys()))

    @staticmethod
    def _header(column: str) -> str:
        key, _, value = column.partition("=")
        if not value:
            return key
        return f"{key}\n{value if len(value) <= 24 else value[:22] + '…'}"

    def show_coverage(self, coverage: dict[str, dict[str, int]]) -> None:
        columns = sorted({c for cells in coverage.values() for c in cells})
        codes = sorted(coverage)
        self.coverage.setRowCount(len(codes))
        self.coverage.setColumnCount(len(columns))
        self.coverage.setHorizontalHeaderLabels([self._header(c) for c in columns])
        self.coverage.setVerticalHeaderLabels(codes)
        peak = max([n for cells in coverage.values() for n in cells.values()] or [1])
        for r, code in enumerate(codes):
            for c, column in enumerate(columns):
                n = coverage[code].get(column, 0)
                item = QTableWidgetItem(str(n) if n else "")
                shade = 255 - int(150 * n / peak)
                item.setBackground(QColor(shade, 255 - int(60 * n / peak), shade) if n else QColor(255, 240, 240))
                self.coverage.setItem(r, c, item)
        self.coverage.resizeColumnsToContents()
        self.coverage_label.setText(f"Coverage of run {self.run_id}: {len(codes)} codes × {len(columns)} condition values")
