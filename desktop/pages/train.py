"""Train & evaluate page: choose the data mix, train with progress and cancel, compare models, charts, report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QPushButton, QSlider, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from engine.changes import Changes
from engine.classification import get_code, leaf_codes_under
from engine.errors import StatcoderError
from engine.coders.base import TrainedModel
from engine.coders.data import DataMix
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions
from engine.coders.registry import default_model_id, list_models, set_default_model
from engine.coders.train import train_coder
from engine.curate import uncurated_samples
from engine.errors import StatcoderError
from engine.evaluate.metrics import EvaluationResult, evaluate_model, set_report_path
from engine.evaluate.compare import ServingDecision, default_scope, serving_after_training, shared_texts
from engine.evaluate.report import write_report
from engine.coders.coverage import model_coverage
from engine.evaluate.history import StoredEvaluation, latest_evaluations
from engine.jobs import scaled_progress
from engine.store.project import Project

from .. import messages
from ..context import AppContext, Page
from ..help import term_tooltip
from ..widgets.charts import AutoCodingChart, ConfusionChart, LevelAccuracyChart
from ..widgets.progress import JobProgress

CODER_KINDS = [
    ("fastText", "fasttext"),
    ("sentence embeddings + logistic regression", "embedding-lr"),
    ("sentence embeddings, nearest neighbour", "embedding-knn"),
    ("words: BM25 over each code's notes and texts", "lexical"),
    ("ensemble of kNN, embeddings, fastText and words", "ensemble"),
]
# The glossary term (desktop/help.py) explaining each row of the side-by-side table.
METRIC_TERMS = {"top1": "top-1", "top5": "top-5", "macro_f1": "macro-F1", "ece": "ECE", "auto5": "auto-coding",
                "validation": "validation"}
METRIC_ROWS = [("n", "test texts"), ("top1", "top-1"), ("top5", "top-5"), ("macro_f1", "macro-F1"), ("ece", "ECE")]


def code_titles(project: Project, codes) -> dict[str, str]:
    """Titles of the codes that exist (a pair may name a code an older classification had)."""
    titles = {}
    for code in set(codes):
        try:
            titles[code] = get_code(project, code).title
        except StatcoderError:
            continue
    return titles


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
                                     ("augmented", 0, "augmented real-train texts"),
                                     ("pseudo", 0, "confident labels of uncoded texts (Code page, Uncoded texts)")):
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
        models_layout.addWidget(QLabel("Coders side by side (evaluated on the real test texts of the codes each was "
                                       "trained for; ★ = used for coding):"))
        self.same_texts_note = QLabel()
        self.same_texts_note.setWordWrap(True)
        self.same_texts_note.setStyleSheet("color:#663c00")
        self.same_texts_note.hide()
        models_layout.addWidget(self.same_texts_note)
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
        self.confused.setToolTip("Double-click a code (or press Enter) to open it on the Classification page")
        header = self.confused.horizontalHeader()
        for column, mode in enumerate([QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.Stretch,
                                       QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.ResizeToContents]):
            header.setSectionResizeMode(column, mode)
        self.confused.cellDoubleClicked.connect(self.open_confused)
        self.confused.cellActivated.connect(self.open_confused)
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
        self.shared = None
        self.evaluations: dict[int, StoredEvaluation] = {}
        self.last_report: Path | None = None
        ctx.changed.connect(lambda changes: self.refresh() if changes.touches("samples", "models", "realdata",
                                                                               "evaluations") else None)

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
        rows = list(METRIC_ROWS)
        results = {m: ev.result for m, ev in self.evaluations.items() if m in self.model_ids}
        self.shared = shared_texts(results) if len(results) > 1 else None
        if self.shared is not None and self.shared.differ:
            # right under top-1: the figure to compare when the test texts differ
            rows.insert(2, ("shared", f"top-1 on the same {self.shared.n:,} texts"))
        rows += [("codes", "codes evaluated"), ("train_lines", "training lines"), ("validation", "validation top-1")]
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
                if key == "shared":
                    value = pct(self.shared.top1.get(model.id)) if model.id in self.shared.top1 else "not evaluated"
                else:
                    value = self._cell(model, ev.result if ev else None, key)
                self.table.setItem(r, col, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self._same_texts_note(models, results)
        if models:
            # One chart update per refresh: the cell change would otherwise redraw them a second time.
            self.table.blockSignals(True)
            self.table.setCurrentCell(0, len(models) - 1)
            self.table.blockSignals(False)
        self._update_charts()

    def _same_texts_note(self, models, results: dict[int, EvaluationResult]) -> None:
        """Say when the columns were scored on different texts, and which row compares them fairly."""
        shared = self.shared
        if shared is None or not shared.differ:
            self.same_texts_note.hide()
            return
        sets = "; ".join(f"#{m.id}: {results[m.id].n:,} texts of {self._codes_evaluated(results[m.id]):,} codes"
                         for m in models if m.id in results)
        self.same_texts_note.setText(
            f"⚠ The models were evaluated on different test texts ({sets}), so their top-1 and other scores are "
            f"not comparable. The row “top-1 on the same {shared.n:,} texts” scores every model on the texts of "
            f"the {shared.codes:,} codes all were evaluated on.")
        self.same_texts_note.show()

    @staticmethod
    def _codes_evaluated(result: EvaluationResult) -> int:
        return sum(1 for s in result.per_code if s.support)

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
        if key == "codes":
            return f"{TrainPage._codes_evaluated(result):,}"
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
        titles = code_titles(self.project, [c for p in pairs for c in (p.gold, p.predicted)]) if self.project else {}
        for r, pair in enumerate(pairs):
            for c, value in enumerate([pair.gold, pair.predicted, str(pair.count), "yes" if pair.siblings else "no"]):
                label = f"{value}  {titles.get(value, '')}".strip() if c < 2 else value
                item = QTableWidgetItem(label)
                if c < 2:
                    item.setData(Qt.ItemDataRole.UserRole, value)
                    item.setToolTip(titles.get(value, ""))
                self.confused.setItem(r, c, item)

    def open_confused(self, row: int, column: int) -> None:
        """Show a code of a confused pair on the Classification page (the true code unless the predicted one was clicked)."""
        item = self.confused.item(row, 1 if column == 1 else 0)
        code = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if code:
            self.ctx.show_code.emit(code)

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

        previous = default_model_id(project)

        def train_and_evaluate(progress, cancel) -> tuple[TrainedModel, ServingDecision, str]:
            trained = train_coder(project, mix, kind=coder_kind, name=name, fasttext=options,
                                  progress=scaled_progress(progress, 0.0, 0.85), cancel=cancel)
            # A new coder validated on texts of its own (other codes) would replace the serving one
            # whatever it scored: compare the two on the texts both know first.
            serving = serving_after_training(project, trained.model_id, previous)
            scope = default_scope(project, trained.model_id)
            evaluate_model(project, trained.model_id, codes=scope.codes,
                           progress=scaled_progress(progress, 0.85, 1.0), cancel=cancel)
            # What the pages read when the new coder arrives (the evaluations' JSON, the coder's coverage),
            # read here first: the GUI thread then finds them parsed instead of stalling on them.
            latest_evaluations(project)
            model_coverage(project, trained.model_id)
            return trained, serving, scope.describe()

        uncurated = self.update_uncurated_warning()
        if uncurated:
            self.ctx.notify(f"Training with {uncurated:,} synthetic samples that were never curated; run curation "
                            "on the Review page to flag and reject the junk among them.", "warning")
        self.train_button.setEnabled(False)
        job = self.ctx.run("Training", train_and_evaluate, on_success=self._trained,
                           on_finish=lambda: self.train_button.setEnabled(True))
        self.progress.attach(job, "Training…")

    def _trained(self, outcome: tuple[TrainedModel, ServingDecision, str]) -> None:
        trained, serving, scope = outcome
        top1 = (trained.validation or {}).get("top1")
        lines = trained.composition.get("train_lines")
        message = (f"Trained coder {trained.model_id} ({trained.kind}) in {trained.train_s:.1f} s"
                   + (f" on {lines:,} lines" if lines else "")
                   + (f"; validation top-1 {top1:.1%}" if top1 is not None else "")
                   + f"; evaluated on {scope}. {serving.message}"
                   + "".join(f" {w}" for w in trained.warnings))
        if serving.kept_better and messages.ask_yes_no(
                self, "Keep the coder used for coding?",
                f"{serving.message}\n\nUse the new model {serving.new} for coding anyway?"):
            self.ctx.guarded(set_default_model)(self.project, serving.new)
            message += f" You chose model {serving.new} for coding anyway."
        self.ctx.notify(message, "warning" if serving.kept_better or trained.warnings else "info")
        self.ctx.apply_changes(Changes(models=True, evaluations=True))   # refreshes this page too

    def evaluate_selected(self) -> None:
        project, model = self.project, self.selected_model()
        if project is None or model is None:
            return
        scope = self.ctx.guarded(default_scope)(project, model)
        if scope is None:
            return

        def evaluated(_result) -> None:
            self.ctx.notify(f"Evaluated coder {model} on {scope.describe()}.")
            self.refresh()

        job = self.ctx.run("Evaluation", lambda progress, cancel: evaluate_model(
            project, model, codes=scope.codes, progress=progress, cancel=cancel), on_success=evaluated)
        self.progress.attach(job, "Evaluating…")

    def make_default(self) -> None:
        model = self.selected_model()
        if self.project is None or model is None:
            return
        self.ctx.guarded(set_default_model)(self.project, model)
        self.ctx.apply_changes(Changes(models=True))   # refreshes this page too

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
            path = write_report(ev.result, folder, title=f"Coder {model} on real test texts", project=project)
            set_report_path(project, ev.id, str(path))
            return path

        self.ctx.run("HTML report", write, on_success=self._report_written)

    def _report_written(self, path: Path) -> None:
        self.last_report = path
        self.ctx.notify(f"Report written: {path}")
