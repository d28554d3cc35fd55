"""Import dialogs: a generic classification file with column mapping, real coded texts, uncoded texts."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QGroupBox,
    QLabel, QLineEdit, QListWidget, QSpinBox, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

from engine.classification import ColumnMapping, ParsedClassification, import_parsed, parse_generic
from engine.classification.model import validate
from engine.errors import ValidationError
from engine.classification.reading import FilePreview, preview_file
from engine.realdata.importing import PRESETS, import_preset, import_real_texts
from engine.realdata.uncoded import import_uncoded_texts

from ..context import AppContext
from ..widgets.file_chooser import file_and_encoding

NONE = "(none)"
FIELD_GUESSES = {
    "code": ["code", "id", "key"], "title": ["title", "name", "label", "description"],
    "parent": ["parent", "parent_code"], "level": ["level", "depth"], "includes": ["includes", "include"],
    "also_includes": ["also_includes", "also includes", "includes_also"],
    "excludes": ["excludes", "exclude", "excluded occupations", "excluded", "exclusions"], "notes": ["notes", "note", "explanatory_note"],
    "text": ["text", "activity", "description", "answer"],
}


def guess_column(field: str, columns: list[str]) -> str | None:
    lowered = {c.casefold(): c for c in columns}
    for name in FIELD_GUESSES.get(field, [field]):
        if name in lowered:
            return lowered[name]
    return None


def fill_table(table: QTableWidget, preview: FilePreview, headers: dict[str, str] | None = None) -> None:
    headers = headers or {}
    table.clear()
    table.setColumnCount(len(preview.columns))
    table.setRowCount(len(preview.rows))
    table.setHorizontalHeaderLabels([f"{c} → {headers[c]}" if c in headers else c for c in preview.columns])
    for r, row in enumerate(preview.rows):
        for c, column in enumerate(preview.columns):
            table.setItem(r, c, QTableWidgetItem(row.get(column, "")[:200]))
    table.resizeColumnsToContents()


@dataclass
class CheckedFile:
    parsed: ParsedClassification
    problems: list
    warnings: list[str]
    links: int


class ClassificationImportDialog(QDialog):
    """Map the file's columns, see the first rows and every validation problem, then import."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Import a classification file")
        self.resize(980, 700)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.file, self.encoding = file_and_encoding("Classification file", "CSV or JSON (*.csv *.json *.txt);;All files (*)", self.load_preview)
        self.name = QLineEdit()
        self.name.setPlaceholderText("defaults to the file name")
        self.lenient = QCheckBox("Report links to unknown codes instead of refusing the file")
        self.excludes_pattern = QLineEdit()
        self.excludes_pattern.setPlaceholderText(
            "optional: a regular expression for references to other codes, e.g. \\[(\\d{4})\\]")
        self.excludes_pattern.setToolTip(
            "Links to other codes are found in the excludes (and under a notes' \"classified elsewhere:\" "
            "header) when they read \"see 01.12\", \"(see 2221)\", \"→ 2221\", \"classified in 2221\" or, "
            "as in ISCO-08, \"- Medical physicist - 2111\". For any other form, give a regular expression "
            "whose group (?P<code>…), or only group, is the code.")
        self.excludes_pattern.textChanged.connect(lambda _t: self._mapping_changed())
        self.activity_titles = QCheckBox("Titles lead with the activity (“Wholesale of …”, as in NACE and ISIC)")
        self.activity_titles.setToolTip(
            "Then an ensemble coder ranks a text that names an activity (“wholesale”, “retail”) toward the codes "
            "whose titles lead with it. Leave it off when titles lead with the product (“… Merchant "
            "Wholesalers”, as in NAICS): there it costs accuracy.")
        self.activity_titles.toggled.connect(lambda _on: self._mapping_changed())
        form.addRow("File", self.file)
        form.addRow("Encoding", self.encoding)
        form.addRow("Name", self.name)
        form.addRow("", self.lenient)
        form.addRow("Excludes pattern", self.excludes_pattern)
        form.addRow("", self.activity_titles)
        layout.addLayout(form)

        mapping_box = QGroupBox("Column mapping (code and title are required)")
        mapping_layout = QFormLayout(mapping_box)
        self.mapping: dict[str, QComboBox] = {}
        for field in ColumnMapping.__dataclass_fields__:
            combo = QComboBox()
            combo.currentTextChanged.connect(lambda _t: self._mapping_changed())
            self.mapping[field] = combo
            mapping_layout.addRow(field.replace("_", " "), combo)
        layout.addWidget(mapping_box)
        layout.addWidget(QLabel("First rows of the file:"))
        self.table = QTableWidget()
        layout.addWidget(self.table, 2)
        self.status = QLabel("Choose a file.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.problems = QListWidget()
        layout.addWidget(self.problems, 1)
        buttons = QDialogButtonBox()
        self.check_button = buttons.addButton("Check", QDialogButtonBox.ButtonRole.ActionRole)
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.check_button.clicked.connect(self.check)
        self.import_button.clicked.connect(self.do_import)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.preview: FilePreview | None = None
        self.checked: CheckedFile | None = None
        self.import_result = None
        self._update_buttons()

    def load_preview(self) -> None:
        self.checked = None
        self.problems.clear()
        if not self.file.path:
            return
        try:
            self.preview = preview_file(self.file.path, encoding=self.encoding.currentText())
        except ValidationError as exc:
            self.preview = None
            self._show_problems([str(p) for p in exc.problems], "The file cannot be read:")
            self._update_buttons()
            return
        for field, combo in self.mapping.items():
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(([] if field in ("code", "title") else [NONE]) + self.preview.columns)
            guess = guess_column(field, self.preview.columns)
            combo.setCurrentText(guess or (NONE if field not in ("code", "title") else self.preview.columns[0]))
            combo.blockSignals(False)
        self._mapping_changed()
        self.status.setText(f"{self.preview.total_rows:,} rows. Map the columns, then Check.")

    def column_mapping(self) -> ColumnMapping:
        values = {field: combo.currentText() for field, combo in self.mapping.items()}
        return ColumnMapping(**{k: (None if v in (NONE, "") else v) for k, v in values.items()})

    def _mapping_changed(self) -> None:
        self.checked = None
        if self.preview is not None:
            headers = {column: field for field, column in self.column_mapping().columns().items()}
            fill_table(self.table, self.preview, headers)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.check_button.setEnabled(self.preview is not None)
        self.import_button.setEnabled(self.checked is not None and not self.checked.problems)

    def _show_problems(self, problems: list[str], heading: str) -> None:
        self.status.setText(heading)
        self.problems.clear()
        self.problems.addItems(problems)

    def check(self) -> None:
        """Parse and validate on a worker: nothing is written."""
        path, mapping, encoding = self.file.path, self.column_mapping(), self.encoding.currentText()
        name, strict = self.name.text().strip() or None, not self.lenient.isChecked()
        pattern = self.excludes_pattern.text().strip() or None
        activity = True if self.activity_titles.isChecked() else None   # unchecked: the format's default (off)

        def parse_and_validate(progress, cancel) -> CheckedFile:
            parsed = parse_generic(path, mapping, encoding=encoding, name=name, strict_links=strict,
                                   excludes_pattern=pattern)
            parsed.activity_titles = activity
            problems, warnings, links = validate(parsed)
            return CheckedFile(parsed, problems, warnings, len(links))

        self.status.setText("Checking…")
        self.check_button.setEnabled(False)
        self.ctx.run("Check classification file", parse_and_validate, on_success=self._checked,
                     on_failure=self._check_failed, on_finish=self._update_buttons)

    def _check_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ValidationError):
            self.ctx.messages.clear()
            self._show_problems([str(p) for p in exc.problems],
                                f"{len(exc.problems)} problem(s); nothing will be imported:")

    def _checked(self, result: CheckedFile) -> None:
        self.checked = result
        if result.problems:
            self._show_problems([str(p) for p in result.problems],
                                f"{len(result.problems)} problem(s); fix the file or the mapping:")
        elif result.links:
            self._show_problems(result.warnings, f"OK: {len(result.parsed.codes):,} codes and {result.links:,} "
                                                 f"link{'s' if result.links != 1 else ''} to other codes found in "
                                                 "the excludes. Press Import to write them.")
        else:
            self._show_problems(result.warnings, f"{len(result.parsed.codes):,} codes, but no links to other codes "
                                                 "were found in the excludes: check the excludes column, or give an "
                                                 "excludes pattern. Press Import to write them as they are.")
        self._update_buttons()

    def do_import(self) -> None:
        if self.checked is None or self.ctx.project is None:
            return
        project, parsed = self.ctx.project, self.checked.parsed
        self.import_button.setEnabled(False)
        self.ctx.run("Import classification", lambda progress, cancel: import_parsed(project, parsed),
                     on_success=self._imported)

    def _imported(self, result) -> None:
        self.import_result = result
        self.ctx.notify(f"Imported {result.name}: {result.codes:,} codes ({result.leaf_codes:,} leaf codes), "
                        f"{result.links:,} links.")
        self.accept()   # the result's changes reach the pages once this returns


class RealTextsImportDialog(QDialog):
    """Import coded texts from a built-in set or a CSV with a text and a code column."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Import real coded texts")
        self.resize(860, 560)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.source = QComboBox()
        for name, preset in PRESETS.items():
            self.source.addItem(f"built-in: {name} ({preset.file})", name)
        self.source.addItem("a CSV file…", None)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.file, self.encoding = file_and_encoding("Coded texts", "CSV (*.csv *.txt);;All files (*)", self.load_preview)
        self.text_column = QComboBox()
        self.code_column = QComboBox()
        self.code_digits = QSpinBox()
        self.code_digits.setRange(0, 12)
        self.code_digits.setSpecialValueText("exact codes")
        self.code_digits.setToolTip("Match codes on their first N digits (e.g. 4 maps UK SIC 10110 to NACE 10.11)")
        self.test_share = QDoubleSpinBox()
        self.test_share.setRange(0.0, 0.95)
        self.test_share.setSingleStep(0.05)
        self.test_share.setValue(0.5)
        for label, widget in (("Source", self.source), ("File", self.file), ("Encoding", self.encoding),
                              ("Text column", self.text_column), ("Code column", self.code_column),
                              ("Code digits", self.code_digits), ("Test share", self.test_share)):
            form.addRow(label, widget)
        layout.addLayout(form)
        self.table = QTableWidget()
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox()
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.import_button.clicked.connect(self.do_import)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.result = None
        self._source_changed()

    def _source_changed(self) -> None:
        custom = self.source.currentData() is None
        for widget in (self.file, self.encoding, self.text_column, self.code_column, self.code_digits):
            widget.setEnabled(custom)
        if custom:
            self.load_preview()
        else:
            self.table.clear()
            self.table.setRowCount(0)

    def load_preview(self) -> None:
        if not self.file.path:
            return
        try:
            preview = preview_file(self.file.path, encoding=self.encoding.currentText())
        except ValidationError as exc:
            self.ctx.report(exc)
            return
        for combo, field in ((self.text_column, "text"), (self.code_column, "code")):
            combo.clear()
            combo.addItems(preview.columns)
            combo.setCurrentText(guess_column(field, preview.columns) or preview.columns[0])
        fill_table(self.table, preview)

    def do_import(self) -> None:
        project = self.ctx.project
        if project is None:
            return
        preset, share = self.source.currentData(), self.test_share.value()
        if preset is not None:
            def job(progress, cancel):
                return import_preset(project, preset, test_share=share)
        else:
            path, text, code = self.file.path, self.text_column.currentText(), self.code_column.currentText()
            encoding, digits = self.encoding.currentText(), self.code_digits.value() or None

            def job(progress, cancel):
                return import_real_texts(project, path, text_column=text, code_column=code, encoding=encoding,
                                         code_digits=digits, test_share=share)
        self.import_button.setEnabled(False)
        self.ctx.run("Import coded texts", job, on_success=self._imported,
                     on_finish=lambda: self.import_button.setEnabled(True))

    def _imported(self, result) -> None:
        self.result = result
        self.ctx.notify("Coded texts: " + "\n".join(result.lines()))
        self.accept()   # the result's changes reach the pages once this returns


class UncodedTextsImportDialog(QDialog):
    """Import the answers an office never coded: a CSV with a text column (other columns are ignored)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Import uncoded texts")
        self.resize(760, 480)
        layout = QVBoxLayout(self)
        hint = QLabel("Texts already coded in the project and repeated texts are skipped and counted. Texts that are "
                      "in the test split of your coded texts are kept but never labelled.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        form = QFormLayout()
        self.file, self.encoding = file_and_encoding("Uncoded texts", "CSV (*.csv *.txt);;All files (*)", self.load_preview)
        self.text_column = QComboBox()
        for label, widget in (("File", self.file), ("Encoding", self.encoding), ("Text column", self.text_column)):
            form.addRow(label, widget)
        layout.addLayout(form)
        self.table = QTableWidget()
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox()
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setEnabled(False)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.import_button.clicked.connect(self.do_import)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.result = None

    def load_preview(self) -> None:
        self.import_button.setEnabled(False)
        if not self.file.path:
            return
        try:
            preview = preview_file(self.file.path, encoding=self.encoding.currentText())
        except ValidationError as exc:
            self.ctx.report(exc)
            return
        self.text_column.clear()
        self.text_column.addItems(preview.columns)
        self.text_column.setCurrentText(guess_column("text", preview.columns) or preview.columns[0])
        fill_table(self.table, preview)
        self.import_button.setEnabled(bool(preview.columns))

    def do_import(self) -> None:
        project = self.ctx.project
        if project is None or not self.file.path:
            return
        path, column, encoding = self.file.path, self.text_column.currentText(), self.encoding.currentText()
        self.import_button.setEnabled(False)
        self.ctx.run("Import uncoded texts",
                     lambda progress, cancel: import_uncoded_texts(project, path, text_column=column, encoding=encoding),
                     on_success=self._imported, on_finish=lambda: self.import_button.setEnabled(True))

    def _imported(self, result) -> None:
        self.result = result
        self.ctx.notify("Uncoded texts: " + "; ".join(result.lines()))
        self.accept()
