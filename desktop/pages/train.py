"""Train & evaluate page: choose the data mix, train with progress and cancel, compare models, charts, report."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QSlider, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from engine.classification import leaf_codes_under
from engine.coders.base import TrainedModel
from engine.coders.data import DataMix
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions
from engine.coders.registry import default_model_id, list_models, set_default_model
from engine.coders.train import train_coder
from engine.curate import uncurated_samples
from engine.errors import StatcoderError
from engine.evaluate.metrics import EvaluationResult, evaluate_model, set_report_path
from engine.evaluate.report import write_report
from engine.evaluate.history import StoredEvaluation, latest_evaluations
from engine.jobs import scaled_progress
from engine.store.project import Project

from ..context import AppContext, Page
from ..help import term_tooltip
from ..widgets.charts import AutoCodingChart, ConfusionChart, LevelAccuracyChart
from ..widgets.progress import JobProgress

CODER_KINDS = [
    ("fastText", "fasttext"),
    ("sentence embeddings + logistic regression", "embedding-lr"),
    ("sentence embeddings, nearest neighbour", "embedding-knn"),
    ("ensemble of fastText and embeddings", "ensemble"),
]
# The glossary term (desktop/help.py) explaining each row of the side-by-side table.
METRIC_TERMS = {"top1": "top-1", "top5": "top-5", "macro_f1": "macro-F1", "ece": "ECE", "auto5": "auto-coding",
                "validation": "validation"}
METRIC_ROWS = [("n", "test texts"), ("top1", "top-1"), ("top5", "top-5"), ("macro_f1", "macro-F1"), ("ece", "ECE")]


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


class TrainPage(Page):
    key = "train"
    title = "Train & evaluate"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        layout = QVBoxLayout(self)
        train_box = QGroupBox("Train a coder")
        form = QHBoxLayout(train_box)
        mix_form = QFormLayout()
        self.weights: dict[str, QSpinBox] = {}
        for source, default, tip in (("notes", 1, "lines of the explanatory notes"),
                                     ("synthetic", 1, "accepted synthetic samples"),
                                     ("real", 1, "real coded texts (train split only)"),
                                     ("augmented", 0, "augmented real-train texts")):
            spin = QSpinBox()
            spin.setRange(0, 10)
            spin.setValue(default)
            spin.setToolTip(f"How many times the {tip} are repeated; 0 leaves them out")
            self.weights[source] = spin
            mix_form.addRow(f"{source} ×", spin)
        form.addLayout(mix_form)
        options = QFormLayout()
        self.scope = QLineEdit()
        self.scope.setPlaceholderText("all codes; or e.g. 10, 11")
        self.name = QLineEdit()
        self.name.setPlaceholderText("a name for the model")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.epochs.setValue(DEFAULT_PARAMS.epoch)
        self.quantize = QCheckBox("small .ftz file (quantised)")
        self.kind = QComboBox()
        for label, kind in CODER_KINDS:
            self.kind.addItem(label, kind)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        options.addRow("Coder", self.kind)
        options.addRow("Only codes under", self.scope)
        options.addRow("Name", self.name)
        options.addRow("Epochs", self.epochs)
        options.addRow("", self.quantize)
        self.hierarchy = QDoubleSpinBox()
        self.hierarchy.setRange(0.0, 0.9)
        self.hierarchy.setSingleStep(0.05)
        self.hierarchy.setSpecialValueText("off")
        self.hierarchy.setToolTip("Hierarchy-aware training: this share of each text's label goes to its code's "
                                  "sibling codes (label smoothing towards the parent)")
        options.addRow("Sibling smoothing", self.hierarchy)
        form.addLayout(options, 1)
        buttons = QVBoxLayout()
        self.train_button = QPushButton("Train and evaluate")
        self.train_button.clicked.connect(self.start_training)
        buttons.addWidget(self.train_button)
        buttons.addStretch(1)
        form.addLayout(buttons)
        layout.addWidget(train_box)
        # Said before training, not after: synthetic samples no curation has judged are trained on as the
        # model wrote them, junk such as "Manufacture of bakery, bakery, bakery" included.
        self.uncurated_label = QLabel()
        self.uncurated_label.setWordWrap(True)
        self.uncurated_label.setStyleSheet("color:#663c00; background:#fff4e5; padding:4px; border-radius:4px;")
        self.uncurated_label.linkActivated.connect(lambda _link: self.ctx.show_page.emit("review"))
        self.uncurated_label.hide()
        layout.addWidget(self.uncurated_label)
        self.weights["synthetic"].valueChanged.connect(lambda _v: self.update_uncurated_warning())
        self.scope.editingFinished.connect(self.update_uncurated_warning)
        self.progress = JobProgress()
        layout.addWidget(self.progress)

        models_box = QWidget()
        models_layout = QVBoxLayout(models_box)
        models_layout.setContentsMargins(0, 0, 0, 0)
        models_layout.addWidget(QLabel("Models side by side (evaluated on the real test split; ★ = used for coding):"))
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectColumns)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.currentCellChanged.connect(lambda _r, col, *_: self._model_selected(col))
        models_layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.clicked.connect(self.evaluate_selected)
        self.default_button = QPushButton("Use for coding")
        self.default_button.clicked.connect(self.make_default)
        self.report_button = QPushButton("Export HTML report…")
        self.report_button.clicked.connect(self.export_report_dialog)
        for button in (self.evaluate_button, self.default_button, self.report_button):
            row.addWidget(button)
        row.addStretch(1)
        models_layout.addLayout(row)

        self.charts = QTabWidget()
        self.level_chart = LevelAccuracyChart()
        self.charts.addTab(self.level_chart, "Accuracy per level")
        curve_tab = QWidget()
        curve_layout = QVBoxLayout(curve_tab)
        self.curve_chart = AutoCodingChart()
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 99)
        self.threshold.setValue(50)
        self.threshold.valueChanged.connect(self._threshold_changed)
        self.threshold_label = QLabel()
        curve_layout.addWidget(self.curve_chart, 1)
        curve_layout.addWidget(self.threshold)
        curve_layout.addWidget(self.threshold_label)
        self.charts.addTab(curve_tab, "Auto-coding curve")
        confused_tab = QSplitter()
        self.confusion_chart = ConfusionChart()
        self.confused = QTableWidget(0, 4)
        self.confused.setHorizontalHeaderLabels(["true code", "predicted", "texts", "siblings"])
        self.confused.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        confused_tab.addWidget(self.confusion_chart)
        confused_tab.addWidget(self.confused)
        confused_tab.setSizes([700, 360])
        self.charts.addTab(confused_tab, "Confused pairs")
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(models_box)
        splitter.addWidget(self.charts)
        splitter.setSizes([260, 420])
        layout.addWidget(splitter, 1)

        self.model_ids: list[int] = []
        self.evaluations: dict[int, StoredEvaluation] = {}
        self.last_report: Path | None = None
        ctx.data_changed.connect(lambda what: self.refresh() if what in ("samples", "models", "realdata") else None)

    # data ---------------------------------------------------------------------------------------
    def on_project_changed(self, project: Project | None) -> None:
        self.refresh()

    def uncurated_count(self) -> int:
        """Accepted synthetic samples the current form would train on that no curation has judged."""
        if self.project is None or not self.weights["synthetic"].value():
            return 0
        try:
            mix = self.data_mix()
        except StatcoderError:   # a code being typed in "Only codes under" that does not exist (yet)
            return 0
        return uncurated_samples(self.project, run_ids=mix.run_ids, codes=mix.codes)

    def update_uncurated_warning(self) -> int:
        n = self.uncurated_count()
        self.uncurated_label.setVisible(n > 0)
        if n:
            self.uncurated_label.setText(
                f"⚠ {n:,} synthetic sample{'s' if n != 1 else ''} in this mix {'were' if n != 1 else 'was'} never "
                "curated: training would use them as generated, junk included. "
                "<a href='review'>Run curation on the Review page</a> first, or set synthetic × to 0.")
        return n

    def refresh(self) -> None:
        self.update_uncurated_warning()
        project = self.project
        self.table.clear()
        self.model_ids = []
        self.evaluations = {}
        if project is None:
            return
        models = list_models(project)
        self.evaluations = latest_evaluations(project)
        default = default_model_id(project)
        self.model_ids = [m.id for m in models]
        rows = METRIC_ROWS + [("train_lines", "training lines"), ("validation", "validation top-1")]
        levels: list[str] = []
        for ev in self.evaluations.values():
            levels.extend(k for k in ev.result.per_level if k not in levels)
        rows += [(f"level:{name}", f"accuracy: {name}") for name in levels]
        rows += [("auto5", "auto-coded at ≤5% error")]
        self.table.setRowCount(len(rows))
        self.table.setColumnCount(len(models))
        self.table.setVerticalHeaderLabels([label for _, label in rows])
        for r, (key, _label) in enumerate(rows):   # what ECE, macro-F1 … mean, where they are shown
            tip = term_tooltip(METRIC_TERMS.get(key.split(":")[0], ""))
            if tip and self.table.verticalHeaderItem(r) is not None:
                self.table.verticalHeaderItem(r).setToolTip(tip)
        self.table.setHorizontalHeaderLabels([f"{'★ ' if m.id == default else ''}#{m.id} {m.name}" for m in models])
        for col, model in enumerate(models):
            ev = self.evaluations.get(model.id)
            for r, (key, _) in enumerate(rows):
                self.table.setItem(r, col, QTableWidgetItem(self._cell(model, ev.result if ev else None, key)))
        self.table.resizeColumnsToContents()
        if models:
            # One chart update per refresh: the cell change would otherwise redraw them a second time.
            self.table.blockSignals(True)
            self.table.setCurrentCell(0, len(models) - 1)
            self.table.blockSignals(False)
        self._update_charts()

    @staticmethod
    def _cell(model, result: EvaluationResult | None, key: str) -> str:
        if key == "train_lines":
            return f"{model.data.get('train_lines', 0):,}"
        if key == "validation":
            return pct((model.validation or {}).get("top1"))
        if result is None:
            return "not evaluated"
        if key == "n":
            return f"{result.n:,}"
        if key == "ece":
            return f"{result.ece:.3f}"
        if key == "macro_f1":
            return f"{result.macro_f1:.3f}"
        if key.startswith("level:"):
            return pct(result.per_level.get(key[len("level:"):]))
        if key == "auto5":
            at5 = result.thresholds.get("prob@0.05", {})
            return "–" if at5.get("threshold") is None else f"{pct(at5.get('coverage'))} (≥ {at5['threshold']:.2f})"
        return pct(getattr(result, key))

    def selected_model(self) -> int | None:
        col = self.table.currentColumn()
        return self.model_ids[col] if 0 <= col < len(self.model_ids) else None

    def _model_selected(self, _col: int) -> None:
        self._update_charts()

    def _update_charts(self) -> None:
        names = {m: self.table.horizontalHeaderItem(i).text() for i, m in enumerate(self.model_ids)}
        self.level_chart.set_results({names[m]: ev.result for m, ev in self.evaluations.items() if m in names})
        model = self.selected_model()
        ev = self.evaluations.get(model) if model is not None else None
        self.report_button.setEnabled(ev is not None)
        self.default_button.setEnabled(model is not None)
        self.evaluate_button.setEnabled(model is not None)
        self.confused.setRowCount(0)
        if ev is None:
            self.curve_chart.set_curve([], "Auto-coding curve: evaluate a model first")
            self.threshold_label.clear()
            return
        self.curve_chart.set_curve(ev.result.curve_prob, f"Auto-coding curve of {names[model]}")
        self._threshold_changed(self.threshold.value())
        self.confusion_chart.set_pairs(ev.result.confused, f"Most confused pairs of {names[model]}")
        pairs = ev.result.confused[:30]
        self.confused.setRowCount(len(pairs))
        for r, pair in enumerate(pairs):
            for c, value in enumerate([pair.gold, pair.predicted, str(pair.count), "yes" if pair.siblings else "no"]):
                self.confused.setItem(r, c, QTableWidgetItem(value))

    def _threshold_changed(self, value: int) -> None:
        threshold = value / 100
        point = self.curve_chart.set_threshold(threshold)
        if point is None:
            self.threshold_label.clear()
            return
        error = "–" if point.error is None else f"{point.error:.1%}"
        self.threshold_label.setText(f"Threshold {threshold:.2f}: auto-codes {point.coverage:.1%} of texts "
                                     f"({point.n_auto:,}) with an expected error of {error}; the rest go to review.")

    # actions ------------------------------------------------------------------------------------
    def data_mix(self) -> DataMix:
        tops = [s.strip() for s in self.scope.text().replace(";", ",").split(",") if s.strip()]
        codes = leaf_codes_under(self.project, tops) if tops else None
        return DataMix(**{k: spin.value() for k, spin in self.weights.items()}, codes=codes,
                       hierarchy_smoothing=self.hierarchy.value())

    def _kind_changed(self) -> None:
        fasttext = self.kind.currentData() in ("fasttext", "ensemble")
        self.epochs.setEnabled(fasttext)
        self.quantize.setEnabled(self.kind.currentData() == "fasttext")

    def start_training(self) -> None:
        project = self.project
        if project is None:
            return
        mix = self.data_mix()
        kind, name = self.kind.currentData(), self.name.text().strip()
        params = dataclasses.replace(DEFAULT_PARAMS, epoch=self.epochs.value())
        options = TrainOptions(params=params, name=name, quantize=self.quantize.isChecked())

        coder_kind = {"embedding-lr": "embedding", "embedding-knn": "knn"}.get(kind, kind)

        def train_and_evaluate(progress, cancel) -> TrainedModel:
            trained = train_coder(project, mix, kind=coder_kind, name=name, fasttext=options,
                                  progress=scaled_progress(progress, 0.0, 0.85), cancel=cancel)
            evaluate_model(project, trained.model_id, codes=mix.codes,
                           progress=scaled_progress(progress, 0.85, 1.0), cancel=cancel)
            return trained

        uncurated = self.update_uncurated_warning()
        if uncurated:
            self.ctx.notify(f"Training with {uncurated:,} synthetic samples that were never curated; run curation "
                            "on the Review page to flag and reject the junk among them.", "warning")
        self.train_button.setEnabled(False)
        job = self.ctx.run("Training", train_and_evaluate, on_success=self._trained,
                           on_finish=lambda: self.train_button.setEnabled(True))
        self.progress.attach(job, "Training…")

    def _trained(self, trained: TrainedModel) -> None:
        top1 = (trained.validation or {}).get("top1")
        lines = trained.composition.get("train_lines")
        self.ctx.notify(f"Trained model {trained.model_id} ({trained.kind}) in {trained.train_s:.1f} s"
                        + (f" on {lines:,} lines" if lines else "")
                        + (f"; validation top-1 {top1:.1%}" if top1 is not None else "") + "."
                        + "".join(f" {w}" for w in trained.warnings))
        self.ctx.data_changed.emit("models")   # refreshes this page too

    def evaluate_selected(self) -> None:
        project, model = self.project, self.selected_model()
        if project is None or model is None:
            return
        record = next(m for m in list_models(project) if m.id == model)
        codes = record.data.get("codes")
        job = self.ctx.run("Evaluation", lambda progress, cancel: evaluate_model(
            project, model, codes=codes, progress=progress, cancel=cancel), on_success=lambda _r: self.refresh())
        self.progress.attach(job, "Evaluating…")

    def make_default(self) -> None:
        model = self.selected_model()
        if self.project is None or model is None:
            return
        self.ctx.guarded(set_default_model)(self.project, model)
        self.ctx.data_changed.emit("models")
        self.refresh()

    def export_report_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the HTML report", str(Path.home()))
        if folder:
            self.export_report(Path(folder))

    def export_report(self, folder: Path) -> None:
        model = self.selected_model()
        ev = self.evaluations.get(model) if model is not None else None
        if ev is None or self.project is None:
            return
        project = self.project

        def write(progress, cancel):
            path = write_report(ev.result, folder, title=f"Model {model} on real test texts", project=project)
            set_report_path(project, ev.id, str(path))
            return path

        self.ctx.run("HTML report", write, on_success=self._report_written)

    def _report_written(self, path: Path) -> None:
        self.last_report = path
        self.ctx.notify(f"Report written: {path}")
