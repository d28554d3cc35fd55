"""Review page: synthetic samples filtered by code, run, flag, strategy and status; keyboard decisions; bulk actions."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSplitter,
    QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout,
)

from engine.changes import Changes
from engine.curate import clear_user_status, flag_counts, set_sample_status
from engine.curate.samples import (SampleFilter, SampleRow, count_samples, edit_sample, filter_choices, list_samples,
                                   sample_ids)
from engine.curate.settings import CurationSettings, run_curation
from engine.generate import list_runs
from engine.store.project import Project

from ..context import AppContext, Page
from ..messages import ask_yes_no, plural
from ..widgets.code_picker import CodePicker
from ..widgets.curation_form import CurationDialog
from ..widgets.progress import JobProgress
from ..widgets.text_dialog import ask_text

PAGE_ROWS = 1000
ALL = "(all)"
COLUMNS = ["id", "code", "status", "strategy", "run", "flags", "text"]
STATUS_COLOURS = {"accepted": Qt.GlobalColor.darkGreen, "rejected": Qt.GlobalColor.darkRed}


class ReviewPage(Page):
    key = "review"
    title = "Review"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        layout = QVBoxLayout(self)
        filters = QHBoxLayout()
        self.code_filter = QLineEdit()
        self.code_filter.setPlaceholderText("code or group, e.g. 10.7")
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("text contains…")
        self.run_filter, self.flag_filter = QComboBox(), QComboBox()
        self.strategy_filter, self.status_filter = QComboBox(), QComboBox()
        self.status_filter.addItems([ALL, "accepted", "rejected"])
        for label, widget in (("Code", self.code_filter), ("Run", self.run_filter), ("Flag", self.flag_filter),
                              ("Strategy", self.strategy_filter), ("Status", self.status_filter),
                              ("Text", self.text_filter)):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget, 2 if isinstance(widget, QLineEdit) else 1)
        layout.addLayout(filters)
        self._reload_timer = QTimer(self, singleShot=True, interval=150, timeout=self.reload)
        for edit in (self.code_filter, self.text_filter):
            edit.textChanged.connect(lambda _t: self._reload_timer.start())
        for combo in (self.run_filter, self.flag_filter, self.strategy_filter, self.status_filter):
            combo.currentIndexChanged.connect(lambda _i: self._reload_timer.start())

        bar = QHBoxLayout()
        self.curate_button = QPushButton("Run curation…")
        self.curate_button.setToolTip("Flag junk, duplicates and mislabelled samples with a reason; reject or "
                                      "relabel them (the options of `statcoder curate run`)")
        self.curate_button.clicked.connect(self.open_curation_dialog)
        bar.addWidget(self.curate_button)
        self.count_label = QLabel()
        bar.addWidget(self.count_label, 1)
        self.bulk_accept = QPushButton("Accept all matching")
        self.bulk_reject = QPushButton("Reject all matching")
        self.bulk_accept.clicked.connect(lambda: self.bulk("accepted"))
        self.bulk_reject.clicked.connect(lambda: self.bulk("rejected"))
        bar.addWidget(self.bulk_accept)
        bar.addWidget(self.bulk_reject)
        layout.addLayout(bar)
        self.curation_progress = JobProgress()
        layout.addWidget(self.curation_progress)
        self.curation_summary = QLabel()
        self.curation_summary.setWordWrap(True)
        self.curation_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.curation_summary.hide()
        layout.addWidget(self.curation_summary)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_details(row))
        self.details = QTextBrowser()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setSizes([520, 160])
        layout.addWidget(splitter, 1)
        layout.addWidget(QLabel("Keys: A accept · R reject · E edit text · L relabel · U undo my decision · "
                                "↑/↓ move. Decisions apply to the selected rows."))
        for key, action in (("A", lambda: self.set_status("accepted")), ("R", lambda: self.set_status("rejected")),
                            ("E", self.edit_current), ("L", self.relabel_current), ("U", self.undo_selected)):
            shortcut = QShortcut(QKeySequence(key), self.table, activated=action)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        self.rows: list[SampleRow] = []
        self.curation_job = None
        self.last_curation = None
        ctx.changed.connect(lambda changes: self.refresh_filters() if changes.touches("samples", "curation") else None)

    # loading ------------------------------------------------------------------------------------
    def on_project_changed(self, project: Project | None) -> None:
        self.curation_summary.hide()
        self.last_curation = None
        self.refresh_filters()

    # curation -----------------------------------------------------------------------------------
    def open_curation_dialog(self) -> CurationDialog | None:
        """The options of `statcoder curate run`; Run starts curation on a worker."""
        if self.project is None:
            return None
        runs = [(s.run_id, f"run {s.run_id}: {s.name} ({s.done:,} samples, {s.status})")
                for s in list_runs(self.project)]
        dialog = CurationDialog(runs, self)
        dialog.accepted.connect(lambda: self.run_curation(dialog.settings()))
        self.open_dialog_hook(dialog)
        dialog.open()
        return dialog

    # Tests replace this to fill in the dialog; by default it does nothing.
    open_dialog_hook = staticmethod(lambda dialog: None)

    def run_curation(self, settings: CurationSettings | None = None) -> None:
        project = self.project
        if project is None or self.curation_job is not None:
            return
        settings = settings or CurationSettings()
        self.curate_button.setEnabled(False)
        self.curation_job = self.ctx.run(
            "Curation", lambda progress, cancel: run_curation(project, settings, progress=progress, cancel=cancel),
            on_success=self._curated, on_finish=self._curation_stopped)
        self.curation_progress.attach(self.curation_job, "Curation: reading the samples…")

    def _curated(self, result) -> None:
        self.last_curation = result
        flags = ", ".join(f"{rule} {n:,}" for rule, n in sorted(result.flags.items(), key=lambda kv: -kv[1]))
        self.curation_summary.setText(
            f"<b>Curation {result.curation_id}</b>: {result.samples:,} samples, {result.accepted:,} accepted "
            f"({result.relabeled:,} relabelled), {result.rejected:,} rejected in {result.seconds:.1f} s. "
            f"Flags set: {flags or 'none'}. {self._judged(result)}{' '.join(result.balance.lines(limit=10))}")
        self.curation_summary.show()
        self.ctx.notify(f"Curation {result.curation_id}: {result.rejected:,} of {result.samples:,} samples rejected, "
                        f"{result.relabeled:,} relabelled. The flagged samples are listed below.")
        # Show what it flagged: the "any flag" filter, set before the refresh the result's changes cause.
        self.flag_filter.blockSignals(True)
        if self.flag_filter.findText("any flag") < 0:
            self.flag_filter.addItem("any flag")
        self.flag_filter.setCurrentText("any flag")
        self.flag_filter.blockSignals(False)

    @staticmethod
    def _judged(result) -> str:
        j = getattr(result, "judge", None)
        if not j:
            return ""
        reused = f" ({j['reused']:,} answered from an earlier run's verdicts)" if j.get("reused") else ""
        return (f"The LLM judge read {j['judged']:,} label-check flags{reused}: it confirmed {j['confirmed']:,} "
                f"and dismissed {j['dismissed']:,}. ")

    def _curation_stopped(self) -> None:
        self.curation_job = None
        self.curate_button.setEnabled(self.project is not None)

    def refresh_filters(self) -> None:
        project = self.project
        choices = filter_choices(project) if project else {"runs": [], "strategies": [], "rules": []}
        for combo, items in ((self.run_filter, [str(r) for r in choices["runs"]]),
                             (self.strategy_filter, choices["strategies"]),
                             (self.flag_filter, ["any flag", *choices["rules"]])):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([ALL, *items])
            if current in items or current == "any flag":
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self.reload()

    def current_filter(self) -> SampleFilter:
        def pick(combo: QComboBox) -> str | None:
            return None if combo.currentText() in (ALL, "") else combo.currentText()

        flag = pick(self.flag_filter)
        run = pick(self.run_filter)
        return SampleFilter(code=self.code_filter.text().strip() or None, run_id=int(run) if run else None,
                            rule="any" if flag == "any flag" else flag, strategy=pick(self.strategy_filter),
                            status=pick(self.status_filter), text=self.text_filter.text().strip() or None)

    def reload(self, keep_row: int | None = None) -> None:
        project = self.project
        self.rows = []
        if project is not None:
            filt = self.current_filter()
            total = count_samples(project, filt)
            self.rows = list_samples(project, filt, limit=PAGE_ROWS)
            shown = f" (first {PAGE_ROWS:,} shown)" if total > PAGE_ROWS else ""
            flags = flag_counts(project)
            flag_text = ", ".join(f"{rule} {c.flagged}" for rule, c in flags.items())
            self.count_label.setText(f"{plural(total, 'sample')} match{'es' if total == 1 else ''}{shown}." + (f"  Flags: {flag_text}" if flags else ""))
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            code = f"{row.code} → {row.curated_code}" if row.curated_code else row.code
            values = [str(row.id), code, row.status + (" (you)" if row.status_by == "user" else ""),
                      row.strategy, str(row.run_id), ", ".join(f.split(":")[0] for f in row.flags), row.text]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c == 2:
                    item.setForeground(STATUS_COLOURS.get(row.status, Qt.GlobalColor.black))
                self.table.setItem(r, c, item)
        for column in range(len(COLUMNS) - 1):  # the text column stretches to the window's edge
            self.table.resizeColumnToContents(column)
        if self.rows:
            row = min(keep_row or 0, len(self.rows) - 1)
            self.table.setCurrentCell(row, 0)
            self._show_details(row)  # the current cell may not have changed, yet the rows did
        else:
            self.details.clear()

    def _show_details(self, row: int) -> None:
        if not 0 <= row < len(self.rows):
            return
        sample = self.rows[row]
        html = [f"<p><b>{escape(sample.code)}</b> · sample {sample.id} · run {sample.run_id} · {escape(sample.strategy)}"
                f" · <b>{sample.status}</b> ({sample.status_by})</p><p style='font-size:12pt'>{escape(sample.text)}</p>"]
        if sample.curated_code:
            html.append(f"<p>Curation relabelled it: it trains <b>{escape(sample.curated_code)}</b>, not "
                        f"{escape(sample.code)}. Override its flag to keep {escape(sample.code)}.</p>")
        if sample.flags:
            html.append("<p><b>Flags</b></p><ul>" + "".join(f"<li>{escape(f)}</li>" for f in sample.flags) + "</ul>")
        if sample.original_code or sample.original_text:
            html.append(f"<p style='color:gray'>Originally: {escape(sample.original_code or sample.code)} · "
                        f"{escape(sample.original_text or sample.text)}</p>")
        self.details.setHtml("".join(html))

    # decisions ----------------------------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if not rows and self.table.currentRow() >= 0:
            rows = [self.table.currentRow()]
        return [self.rows[r].id for r in rows if r < len(self.rows)]

    def _apply(self, action) -> None:
        row = self.table.currentRow()
        if self.ctx.guarded(action)() is None:
            return
        keep = row + 1 if len(self.selected_ids()) <= 1 else row
        self.ctx.apply_changes(Changes(samples=True))   # reloads this page's filters and rows too
        self.reload(keep_row=keep)

    def set_status(self, status: str) -> None:
        ids = self.selected_ids()
        if ids and self.project is not None:
            self._apply(lambda: set_sample_status(self.project, ids, status))

    def undo_selected(self) -> None:
        ids = self.selected_ids()
        if ids and self.project is not None:
            self._apply(lambda: clear_user_status(self.project, ids) or True)

    def edit_current(self, text: str | None = None) -> None:
        ids = self.selected_ids()
        if not ids or self.project is None:
            return
        sample = next(r for r in self.rows if r.id == ids[0])
        if text is None:
            text = ask_text(self, "Edit sample", "Text:", sample.text)
            if text is None:
                return
        self._apply(lambda: edit_sample(self.project, sample.id, text=text))

    def relabel_current(self, code: str | None = None) -> None:
        ids = self.selected_ids()
        if not ids or self.project is None:
            return
        if code is None:
            picker = CodePicker(self.project, self, initial_codes=[self.rows[self.table.currentRow()].code])
            if not picker.exec() or not picker.chosen:
                return
            code = picker.chosen
        self._apply(lambda: [edit_sample(self.project, i, code=code) for i in ids])

    def bulk(self, status: str) -> None:
        project = self.project
        if project is None:
            return
        ids = sample_ids(project, self.current_filter())
        if not ids:
            return
        verb = "Accept" if status == "accepted" else "Reject"
        if not ask_yes_no(self, f"{verb} {plural(len(ids), 'sample')}",
                          f"{verb} all {plural(len(ids), 'sample')} that match the filter? You can undo with U."):
            return
        self._apply(lambda: set_sample_status(project, ids, status))
