"""The curation options of `statcoder curate run` as a form: which runs, which rules flag, reject or relabel,
the label check, quota and cap. It only fills an engine CurationSettings; the Review page runs it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
    QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from engine.curate import ALL_RULES, DEFAULT_RELABEL, DEFAULT_REJECT
from engine.curate.settings import CurationSettings

RULE_HELP = {
    "empty": "no text at all",
    "too_short": "too few letters to be a description",
    "too_long": "longer than a survey answer",
    "prompt_echo": "repeats the prompt's wording (\"Here are…\", \"Code:\")",
    "repeated_tokens": "a word repeated in a row (\"bakery, bakery, bakery\")",
    "language": "not in the classification's language",
    "duplicate": "the same text as another sample",
    "near_duplicate": "almost the same text as another sample (threshold below)",
    "label_conflict": "the same text generated or coded for another code",
    "note_copy": "a copy of a line of the explanatory notes (kept: a fine training text)",
    "note_conflict": "a copy of a note line of another code",
    "excludes_conflict": "matches an excludes line that sends it to another code",
    "label_check": "a classifier trained without it ranks another code first",
    "over_quota": "more accepted samples for the code than the cap",
    "low_logprob": "SuperGen: among the code's samples the generator was least sure of (share below)",
    "low_influence": "SunGen: among the code's samples that pull a coder away from the notes (share below)",
    "model_disagreement": "FuseGen: coders trained on other LLMs' samples do not rank its code (top k below)",
}
COLUMNS = ("rule", "run", "reject", "relabel", "what it flags")
CHECKERS = [("automatic (embeddings for English, else fastText)", "auto"), ("fastText, k-fold", "fasttext"),
            ("sentence embeddings trained on the notes", "embedding")]


class CurationDialog(QDialog):
    """Choose the curation options; `settings()` is what the Review page runs."""

    def __init__(self, runs: list[tuple[int, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run curation")
        self.resize(760, 700)
        layout = QVBoxLayout(self)
        intro = QLabel("Curation flags generated samples with a reason, rejects the junk and relabels samples that "
                       "belong to another code. Nothing is deleted, and your own accept/reject decisions are kept.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.runs = QComboBox()
        self.runs.addItem("every generation run", None)
        for run_id, label in runs:
            self.runs.addItem(label, run_id)
        form.addRow("Samples of", self.runs)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0, 100)
        self.threshold.setValue(CurationSettings.threshold)
        self.threshold.setToolTip("Two texts at least this similar (rapidfuzz ratio, 0-100) are near-duplicates")
        form.addRow("Near-duplicate threshold", self.threshold)
        layout.addLayout(form)

        self.rules = QTableWidget(len(ALL_RULES), len(COLUMNS))
        self.rules.setHorizontalHeaderLabels(list(COLUMNS))
        self.rules.verticalHeader().setVisible(False)
        self.rules.horizontalHeader().setStretchLastSection(True)
        for row, rule in enumerate(ALL_RULES):
            self.rules.setItem(row, 0, QTableWidgetItem(rule))
            for col, on in ((1, True), (2, rule in DEFAULT_REJECT), (3, rule in DEFAULT_RELABEL)):
                item = QTableWidgetItem()
                item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                self.rules.setItem(row, col, item)
            self.rules.setItem(row, 4, QTableWidgetItem(RULE_HELP.get(rule, "")))
        self.rules.resizeColumnsToContents()
        layout.addWidget(QLabel("Rules: run it (flag), let its flag reject the sample, or relabel the sample to the "
                                "code the rule suggests:"))
        layout.addWidget(self.rules, 1)

        check_box = QGroupBox("Label check")
        check_box.setCheckable(True)
        check_box.setChecked(True)
        self.label_check = check_box
        check = QFormLayout(check_box)
        self.checker = QComboBox()
        for label, value in CHECKERS:
            self.checker.addItem(label, value)
        self.mode = QComboBox()
        self.mode.addItem("default for the checker", None)
        self.mode.addItem("k-fold: also trained on the other samples", "kfold")
        self.mode.addItem("notes: trained on the notes (and real texts) only", "notes")
        self.folds, self.top_k = QSpinBox(), QSpinBox()
        self.folds.setRange(2, 20)
        self.folds.setValue(CurationSettings.folds)
        self.top_k.setRange(1, 20)
        self.top_k.setValue(CurationSettings.top_k)
        self.confident = QDoubleSpinBox()
        self.confident.setRange(0.0, 1.0)
        self.confident.setSingleStep(0.05)
        self.confident.setValue(CurationSettings.confident)
        check.addRow("Checker", self.checker)
        check.addRow("Mode", self.mode)
        check.addRow("Folds", self.folds)
        check.addRow("Flag unless its code is in the top", self.top_k)
        check.addRow("… or another code has at least", self.confident)
        # The local LLM judge as the check's second reader (engine.curate.judgecheck): slow, so off by default.
        self.judge = QCheckBox("The local LLM judge reads each flag; a flag acts only where the judge agrees")
        self.judge.setToolTip("The default LLM scores the sample's own code and the checker's candidates from their "
                              "notes. Slow: about 2 seconds per flag on a 2-core CPU, so hours for a whole "
                              "classification. Every answer is kept in the project: a cancelled run resumes where "
                              "it stopped when you run it again.")
        self.judge_confidence = QDoubleSpinBox()
        self.judge_confidence.setRange(0.0, 1.0)
        self.judge_confidence.setSingleStep(0.05)
        self.judge_confidence.setValue(CurationSettings.judge_confidence)
        self.judge_confidence.setToolTip("A flag relabels or rejects only where the judge prefers another code "
                                         "with at least this probability")
        self.judge_confidence.setEnabled(False)
        self.judge.toggled.connect(self.judge_confidence.setEnabled)
        check.addRow(self.judge)
        check.addRow("… where it prefers another code with at least", self.judge_confidence)
        layout.addWidget(check_box)

        more = QHBoxLayout()
        self.real_train = QCheckBox("Use real training texts as evidence")
        self.real_train.setChecked(True)
        self.quota, self.cap = QSpinBox(), QSpinBox()
        self.quota.setRange(0, 100_000)
        self.quota.setSpecialValueText("the runs' quota")
        self.cap.setRange(0, 100_000)
        self.cap.setSpecialValueText("no cap")
        more.addWidget(self.real_train)
        more.addStretch(1)
        more.addWidget(QLabel("Quota per code"))
        more.addWidget(self.quota)
        more.addWidget(QLabel("Cap per code"))
        more.addWidget(self.cap)
        layout.addLayout(more)

        # SuperGen / SunGen / FuseGen (engine.curate.methods): off unless set; their rules above say what they flag.
        methods = QHBoxLayout()
        self.supergen, self.sungen = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, tip in ((self.supergen, "share of each code's samples with the lowest generation probability"),
                          (self.sungen, "share of each code's samples whose training works against the notes")):
            spin.setRange(0.0, 0.95)
            spin.setSingleStep(0.05)
            spin.setSpecialValueText("off")
            spin.setToolTip(f"Flag this {tip}; off: none")
        self.fusegen = QSpinBox()
        self.fusegen.setRange(0, 20)
        self.fusegen.setSpecialValueText("off")
        self.fusegen.setToolTip("With samples of two or more LLMs: flag a sample no other LLM's coder ranks in this top k")
        for label, widget in (("SuperGen share", self.supergen), ("SunGen share", self.sungen),
                              ("FuseGen top k", self.fusegen)):
            methods.addWidget(QLabel(label))
            methods.addWidget(widget)
        methods.addStretch(1)
        layout.addLayout(methods)

        buttons = QDialogButtonBox()
        self.run_button = buttons.addButton("Run curation", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _column(self, col: int) -> frozenset[str]:
        return frozenset(self.rules.item(r, 0).text() for r in range(self.rules.rowCount())
                         if self.rules.item(r, col).checkState() == Qt.CheckState.Checked)

    def set_rule(self, rule: str, column: str, on: bool) -> None:
        """Tick or untick one box (column: run, reject or relabel)."""
        row = ALL_RULES.index(rule)
        self.rules.item(row, COLUMNS.index(column)).setCheckState(
            Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def settings(self) -> CurationSettings:
        run = self.runs.currentData()
        return CurationSettings(
            run_ids=None if run is None else [int(run)], threshold=self.threshold.value(),
            rules=self._column(1), reject=self._column(2), relabel=self._column(3),
            label_check=self.label_check.isChecked(), folds=self.folds.value(), top_k=self.top_k.value(),
            confident=self.confident.value(), use_real_train=self.real_train.isChecked(),
            checker=self.checker.currentData(), check_mode=self.mode.currentData(),
            quota=self.quota.value() or None, cap=self.cap.value() or None, supergen_share=self.supergen.value(),
            sungen_share=self.sungen.value(), fusegen_top_k=self.fusegen.value(),
            judge=self.label_check.isChecked() and self.judge.isChecked(),
            judge_confidence=self.judge_confidence.value())
