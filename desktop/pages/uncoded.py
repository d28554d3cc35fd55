"""Uncoded texts on the Code page: import the answers an office never coded, label them with the coder
(and the local LLM judge), and walk the least confident labels one at a time.

The confident labels become the pseudo-labelled training source (the Train page's "pseudo ×"); a
person's decision in the review queue is stored like any decision on the Code page (a real coded text)
and takes the label out of the pseudo-labelled source (engine.assist.pseudo).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from engine.assist.pseudo import (
    PseudoItem, label_uncoded, mark_reviewed, pseudo_review_queue, pseudo_status, reopen_review,
)
from engine.changes import Changes
from engine.store.project import Project

from ..context import AppContext
from ..widgets.coding_panel import CodingPanel, HistoryEntry
from ..widgets.progress import JobProgress
from .imports import UncodedTextsImportDialog


class UncodedPanel(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.backend = None
        layout = QVBoxLayout(self)
        box = QGroupBox("1. Label the texts nobody has coded yet")
        form = QFormLayout(box)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.import_button = QPushButton("Import uncoded texts…")
        self.import_button.clicked.connect(self.open_import_dialog)
        self.judge = QCheckBox("Second opinion from the local LLM on the texts the coder is unsure about")
        self.judge.setToolTip("The local LLM reads each unsure text's best codes with their notes: seconds per text on "
                              "a CPU. Stopped, labelling again goes on with the texts not labelled yet.")
        self.review_size = QSpinBox()
        self.review_size.setRange(0, 100_000)
        self.review_size.setValue(100)
        self.review_size.setToolTip("The least confident labels kept in the review queue for a person")
        self.label_button = QPushButton("Label uncoded texts")
        self.label_button.clicked.connect(self.start_labelling)
        self.relabel = QCheckBox("label every text again (reviewed ones are kept)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.label_button)
        buttons.addStretch(1)
        form.addRow(self.status_label)
        form.addRow("", self.judge)
        form.addRow("", self.relabel)
        form.addRow("Review queue size", self.review_size)
        form.addRow(buttons)
        layout.addWidget(box)
        self.progress = JobProgress()
        layout.addWidget(self.progress)

        queue_box = QGroupBox("2. Review the least confident labels (Enter accepts, Ctrl+K another code, Ctrl+S "
                              "skips, Ctrl+U cannot be coded, Ctrl+Z undoes)")
        queue_layout = QVBoxLayout(queue_box)
        self.queue_label = QLabel()
        self.queue_label.setTextFormat(Qt.TextFormat.PlainText)   # it quotes the label's code and text
        self.panel = CodingPanel(ctx, load_recent=False)
        self.panel.decided.connect(self._decided)
        self.panel.skipped.connect(self._skipped)
        self.panel.undone.connect(self._undone)
        self.panel.revised.connect(self._revised)
        queue_layout.addWidget(self.queue_label)
        queue_layout.addWidget(self.panel, 1)
        layout.addWidget(queue_box, 1)
        self.queue: list[PseudoItem] = []
        self.current: PseudoItem | None = None
        self.last_result = None
        ctx.changed.connect(self._changed)

    # project, coder and counts ----------------------------------------------------------------
    def set_backend(self, backend) -> None:
        self.backend = backend
        self.panel.set_backend(backend)
        self.refresh()

    def _changed(self, changes: Changes) -> None:
        if changes.touches("realdata", "models"):
            self.refresh()

    def refresh(self) -> None:
        project: Project | None = self.ctx.project
        self.import_button.setEnabled(project is not None)
        if project is None:
            self.status_label.setText("Open a project first.")
            self.label_button.setEnabled(False)
            self._load_queue([])
            return
        status = self.ctx.guarded(pseudo_status)(project)
        if status is None:
            return
        if not status.uncoded:
            self.status_label.setText("No uncoded texts yet: import a CSV of answers nobody has coded (one text "
                                      "column). The coder labels them; the confident labels train the next coder "
                                      "(Train page, “pseudo ×”) and the least confident come here for review.")
        else:
            test = f" ({status.test:,} of them are test texts: never labelled)" if status.test else ""
            self.status_label.setText(
                f"{status.uncoded:,} uncoded texts{test}: {status.unlabelled:,} not labelled yet · "
                f"{status.pseudo:,} confident labels (training source “pseudo”) · {status.held:,} held back · "
                f"{status.review:,} waiting for review · {status.reviewed:,} reviewed")
        self.label_button.setEnabled(self.backend is not None and status.uncoded > status.test)
        self.label_button.setToolTip("" if self.backend is not None else "Train a coder first (Train & evaluate page)")
        self._load_queue(self.ctx.guarded(pseudo_review_queue)(project) or [])

    def open_import_dialog(self) -> UncodedTextsImportDialog:
        dialog = UncodedTextsImportDialog(self.ctx, self)
        dialog.open()
        return dialog

    # labelling --------------------------------------------------------------------------------
    def start_labelling(self) -> None:
        project = self.ctx.project
        if project is None or self.backend is None:
            return
        model = getattr(getattr(self.backend, "model", None), "id", None)
        judged, review, relabel = self.judge.isChecked(), self.review_size.value(), self.relabel.isChecked()

        def work(progress, cancel):
            if not judged:
                return label_uncoded(project, model=model, review=review, relabel=relabel, progress=progress,
                                     cancel=cancel)
            from engine.assist.judge import Judge, judge_backend_settings
            from engine.llm.backends import open_backend

            with open_backend(judge_backend_settings()) as llm:   # loaded here, on the job's thread
                return label_uncoded(project, judge=Judge(project, llm, model=model), review=review,
                                     relabel=relabel, progress=progress, cancel=cancel)

        self.label_button.setEnabled(False)
        job = self.ctx.run("Label uncoded texts", work, on_success=self._labelled, on_cancel=self._stopped,
                           on_finish=self.refresh)
        self.progress.attach(job, "Labelling with second opinions…" if judged else "Labelling…")

    def _labelled(self, result) -> None:
        self.last_result = result
        self.ctx.notify("Uncoded texts: " + "; ".join(result.lines()))

    def _stopped(self, _message: str) -> None:
        # The labels made before the stop are stored: say so and show them.
        self.ctx.notify("Labelling stopped; the labels made so far are kept and labelling again goes on from there.")
        self.ctx.apply_changes(Changes.of("realdata"))

    # the review queue -------------------------------------------------------------------------
    def _load_queue(self, items: list[PseudoItem]) -> None:
        keep = self.current.uncoded_id if self.current is not None else None
        self.queue = list(items)
        current = next((i for i in self.queue if i.uncoded_id == keep), None)
        if current is None or self.panel.text.text() != current.text:
            current = self.queue[0] if self.queue else None
            self._show(current)
        else:
            self.current = current
            self._update_queue_label()

    def _show(self, item: PseudoItem | None) -> None:
        self.current = item
        self.panel.set_text(item.text if item else "", item.uncoded_id if item else None)
        self._update_queue_label()

    def _update_queue_label(self) -> None:
        item = self.current
        if item is None:
            self.queue_label.setText("Nothing waiting for review." if self.ctx.project is not None else "")
            return
        self.queue_label.setText(f"{len(self.queue):,} waiting, least confident first · labelled {item.code} "
                                 f"at {item.score:.0%}")

    def _next_after(self, uncoded_id: int | None) -> PseudoItem | None:
        ids = [i.uncoded_id for i in self.queue]
        if not self.queue:
            return None
        if uncoded_id in ids:
            return self.queue[(ids.index(uncoded_id) + 1) % len(self.queue)]
        return self.queue[0]

    def _decided(self, entry: HistoryEntry) -> None:
        project = self.ctx.project
        if project is None or entry.tag is None:
            return
        self.ctx.guarded(mark_reviewed)(project, entry.tag, entry.code)
        ids = [i.uncoded_id for i in self.queue]
        index = ids.index(entry.tag) if entry.tag in ids else 0
        self.queue = [i for i in self.queue if i.uncoded_id != entry.tag]
        self._show(self.queue[min(index, len(self.queue) - 1)] if self.queue else None)
        self.ctx.apply_changes(Changes.of("realdata"))

    def _skipped(self, _text: str) -> None:
        if self.current is None:
            return
        self._show(self._next_after(self.current.uncoded_id))   # the skipped text stays and comes round again

    def _undone(self, entry: HistoryEntry) -> None:
        project = self.ctx.project
        if project is None or entry.tag is None:
            return
        self.ctx.guarded(reopen_review)(project, entry.tag)
        self.queue = self.ctx.guarded(pseudo_review_queue)(project) or []
        self._show(next((i for i in self.queue if i.uncoded_id == entry.tag), self.queue[0] if self.queue else None))
        self.ctx.apply_changes(Changes.of("realdata"))

    def _revised(self, entry: HistoryEntry) -> None:
        if self.ctx.project is not None and entry.tag is not None:
            self.ctx.guarded(mark_reviewed)(self.ctx.project, entry.tag, entry.code)
