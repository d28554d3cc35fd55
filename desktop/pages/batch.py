"""Batch coding on the Code page: code a CSV above a threshold, then walk its review queue one row at a time."""

from __future__ import annotations

import itertools
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
    QVBoxLayout, QWidget,
)

from engine.assist.coding import BatchResult, batch_code_csv
from engine.errors import ValidationError
from engine.evaluate.history import latest_evaluations
from engine.classification.reading import CsvStream
from engine.assist.review_queue import UNCODABLE, ReviewQueue

from ..context import AppContext
from .. import messages
from ..widgets.coding_panel import CodingPanel, HistoryEntry
from ..widgets.file_chooser import file_and_encoding
from ..widgets.progress import JobProgress
from .imports import guess_column

CHECKED_ROWS = 1_000   # rows decoded when a file is chosen, to report a wrong encoding before coding


def coded_path(path: Path) -> Path:
    return path.with_name(path.stem + ".coded.csv")


class BatchPanel(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.backend = None
        layout = QVBoxLayout(self)
        box = QGroupBox("1. Code a file")
        form = QFormLayout(box)
        self.file, self.encoding = file_and_encoding("CSV file to code", "CSV (*.csv *.txt);;All files (*)",
                                                     self.load_columns)
        self.text_column = QComboBox()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.5)
        self.threshold.setToolTip("Rows whose top probability reaches this are auto-coded; the rest go to review")
        self.threshold_hint = QLabel()
        self.judge = QCheckBox("Second opinion from the local LLM on the rows below the threshold")
        self.judge.setToolTip("The local LLM reads each unsure row's top 5 codes with their notes before the row goes to "
                              "review: seconds per row on a CPU. Stopped, coding the file again resumes without "
                              "asking about a row twice.")
        row = QHBoxLayout()
        self.code_button = QPushButton("Code file")
        self.code_button.clicked.connect(self.start)
        self.result_label = QLabel()
        row.addWidget(self.code_button)
        row.addWidget(self.result_label, 1)
        form.addRow("File", self.file)
        form.addRow("Encoding", self.encoding)
        form.addRow("Text column", self.text_column)
        form.addRow("Auto-code threshold", self.threshold)
        form.addRow("", self.threshold_hint)
        form.addRow("", self.judge)
        form.addRow(row)
        layout.addWidget(box)
        self.progress = JobProgress()
        layout.addWidget(self.progress)

        queue_box = QGroupBox("2. Review queue (decisions are saved as you go; Enter accepts, Ctrl+K another "
                              "code, Ctrl+S skips, Ctrl+U cannot be coded, Ctrl+Z undoes)")
        queue_layout = QVBoxLayout(queue_box)
        self.queue_bar = QProgressBar()
        self.queue_label = QLabel("Code a file to fill the queue.")
        # Only this queue's decisions are listed: undoing one puts its row back in the queue.
        self.panel = CodingPanel(ctx, load_recent=False)
        self.panel.decided.connect(self._decided)
        self.panel.skipped.connect(self._skipped)
        self.panel.undone.connect(self._undone)
        self.panel.revised.connect(self._revised)
        self.write_button = QPushButton("Write reviewed file")
        self.write_button.clicked.connect(self.write_reviewed)
        queue_layout.addWidget(self.queue_label)
        queue_layout.addWidget(self.queue_bar)
        queue_layout.addWidget(self.panel, 1)
        queue_layout.addWidget(self.write_button)
        layout.addWidget(queue_box, 1)
        self.queue: ReviewQueue | None = None
        self.current = None
        self.last_result: BatchResult | None = None
        self._update_queue()

    def set_backend(self, backend) -> None:
        self.backend = backend
        self.panel.set_backend(backend)
        self.code_button.setEnabled(backend is not None)
        project = self.ctx.project
        evaluations = latest_evaluations(project) if project is not None and backend is not None else {}
        ev = evaluations.get(getattr(getattr(backend, "model", None), "id", None))
        at5 = ev.result.thresholds.get("prob@0.05", {}) if ev else {}
        if at5.get("threshold") is not None:
            self.threshold.setValue(at5["threshold"])
            self.threshold_hint.setText(f"From the evaluation: ≥ {at5['threshold']:.2f} auto-codes "
                                        f"{at5['coverage']:.0%} of texts at ≤ 5 % error.")
        else:
            self.threshold_hint.setText("Evaluate the model on the Train & evaluate page to get a threshold for a target error.")

    def load_columns(self) -> None:
        if not self.file.path:
            return
        # Only the header and the first rows are read (on the GUI thread): the file to code may be any size.
        # The first rows catch the usual mistake early (a file in another encoding); damage further down
        # is reported by the coding itself, naming the row.
        try:
            with CsvStream(self.file.path, self.encoding.currentText()) as reader:
                columns = [c for c in reader.header if c]
                for _ in itertools.islice(reader, CHECKED_ROWS):
                    pass
        except ValidationError as exc:
            self.ctx.report(exc)
            return
        if not columns:
            self.ctx.notify(f"{Path(self.file.path).name}: the header line names no columns", "warning")
            return
        self.text_column.clear()
        self.text_column.addItems(columns)
        self.text_column.setCurrentText(guess_column("text", columns) or columns[0])
        out = coded_path(Path(self.file.path))
        if out.exists():
            self.open_queue(out)

    def start(self) -> None:
        project = self.ctx.project
        if project is None or not self.file.path:
            return
        source, column, threshold = Path(self.file.path), self.text_column.currentText(), self.threshold.value()
        encoding = self.encoding.currentText()
        out = coded_path(source)
        if not self._may_restart(out):
            return
        model = getattr(getattr(self.backend, "model", None), "id", None)
        self.code_button.setEnabled(False)
        judged = self.judge.isChecked()

        def code(progress, cancel) -> BatchResult:
            if not judged:
                return batch_code_csv(project, source, out, text_column=column, threshold=threshold, model=model,
                                      encoding=encoding, progress=progress, cancel=cancel)
            from engine.assist.judge import BatchJudge, Judge, judge_backend_settings
            from engine.llm.backends import open_backend

            with open_backend(judge_backend_settings()) as llm:   # loaded here, on the job's thread
                return batch_code_csv(project, source, out, text_column=column, threshold=threshold, model=model,
                                      encoding=encoding, progress=progress, cancel=cancel,
                                      judge=BatchJudge(Judge(project, llm, model=model), out))

        def work(progress, cancel) -> tuple[BatchResult, ReviewQueue]:
            result = code(progress, cancel)
            state = result.out_path.with_name(result.out_path.name + ".review.json")
            state.unlink(missing_ok=True)  # a fresh coding starts a fresh queue
            # The review queue reads the whole coded file: here, on the job's thread, not the GUI's.
            return result, ReviewQueue(result.out_path, text_column=column)

        job = self.ctx.run("Batch coding", work, on_success=self._coded,
                           on_finish=lambda: self.code_button.setEnabled(True))
        self.progress.attach(job, "Coding with second opinions…" if judged else "Coding…")

    def _may_restart(self, out: Path) -> bool:
        """Coding the file again starts a fresh review queue: ask first when reviews would be lost."""
        queue = self.queue if self.queue is not None and self.queue.path == out else None
        if queue is None and out.exists():
            queue = self.ctx.guarded(ReviewQueue)(out, text_column=self.text_column.currentText())
        if queue is None or not queue.done:
            return True
        return messages.ask_yes_no(
            self, "Code the file again?",
            f"{queue.done:,} of {queue.total:,} rows of its review queue are reviewed.\n\nCoding the file again "
            "starts a fresh queue and those reviews are lost (the decisions stay stored as training texts). "
            "Code it again?")

    def _coded(self, done: tuple[BatchResult, ReviewQueue]) -> None:
        result, queue = done
        self.last_result = result
        judge = result.judge or {}
        read = judge.get("judged", 0) + judge.get("reused", 0)
        self.result_label.setText(f"{result.rows:,} rows: {result.auto:,} auto-coded, {result.review:,} to review "
                                  f"({result.rows_per_s:,.0f} rows/s) → {result.out_path.name}"
                                  + (f"; the local LLM read {read:,} unsure rows and re-ranked {judge['changed']:,}"
                                     if judge and (read or not judge.get("not_asked")) else "")
                                  + (f"; {judge['not_asked']:,} unsure rows were not put to the local LLM: its fit "
                                     "gave it no weight, so it could not re-rank them" if judge.get("not_asked") else ""))
        self.queue = queue
        self._next()

    def open_queue(self, path: Path) -> None:
        self.queue = self.ctx.guarded(ReviewQueue)(path, text_column=self.text_column.currentText())
        self._next()

    def _next(self, after: int | None = None) -> None:
        self.current = self.queue.next_pending(after) if self.queue else None
        self._show_current()

    def _show_current(self) -> None:
        self.panel.set_text(self.current.text if self.current else "", self.current.row if self.current else None)
        self._update_queue()

    def _decided(self, entry: HistoryEntry) -> None:
        if self.queue is None or entry.tag is None:
            return
        self.queue.decide(entry.tag, entry.code or UNCODABLE)
        self._next()

    def _skipped(self, _text: str) -> None:
        if self.queue is None or self.current is None:
            return
        self._next(after=self.current.row)   # the skipped row stays pending and comes round again

    def _undone(self, entry: HistoryEntry) -> None:
        if self.queue is None or entry.tag is None:
            return
        self.queue.undo(entry.tag)
        self.current = self.queue.item(entry.tag)
        self._show_current()

    def _revised(self, entry: HistoryEntry) -> None:
        if self.queue is not None and entry.tag is not None:
            self.queue.decide(entry.tag, entry.code or UNCODABLE)

    def _update_queue(self) -> None:
        queue = self.queue
        self.write_button.setEnabled(bool(queue and queue.done))
        if queue is None:
            self.queue_bar.setRange(0, 1)
            self.queue_bar.setValue(0)
            return
        self.queue_bar.setRange(0, max(1, queue.total))
        self.queue_bar.setValue(queue.done)
        where = f"row {self.current.row} (coder said {self.current.code or '–'})" if self.current else "all reviewed"
        self.queue_label.setText(f"{queue.done:,} of {queue.total:,} reviewed · {where}")

    def write_reviewed(self) -> Path | None:
        if self.queue is None:
            return None
        out = self.queue.path.with_name(self.queue.path.stem.replace(".coded", "") + ".reviewed.csv")
        changed = self.ctx.guarded(self.queue.write_reviewed)(out, project=self.ctx.project)
        if changed is not None:
            self.ctx.notify(f"Wrote {out} with {changed:,} reviewed rows.")
        return out
