"""The coding panel, shared by both tabs of the Code page: a text, its top 5 codes beside the notes of the
highlighted one, and keyboard decisions (accept, skip, cannot be coded, undo, revise a recent decision).

The keys are defined in desktop/keys.py, which the help and the README read too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QCheckBox, QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem, QSplitter,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from engine.changes import Changes

from .. import keys
from ..coding_backend import CodingBackend, SuggestionLike, SuggestThread
from ..context import AppContext
from ..help import term_tooltip
from ..messages import plural
from ..settings import app_settings
from .code_details import CodeDetails
from .code_picker import CodePicker

SUGGEST_DELAY_MS = 60
TOP_K = 5
HISTORY_SIZE = 50
JUDGE_COLUMN = 4
# Second opinions by themselves: asked when the coder is unsure and the coder has paused this long, with no
# job running; on or off with keys.AUTO_OPINION, remembered in the app settings (off at first: the LLM takes
# a GB of memory and both cores for seconds).
IDLE_OPINION_MS = 1500
AUTO_OPINION_SETTING = "coding/auto_second_opinion"


class _OpinionSignals(QObject):
    """Carries the judge's answer from its worker thread to the GUI thread (queued connections)."""

    ready = Signal(str, object)   # text, engine.assist.judge.SecondOpinion
    failed = Signal(object)


def format_path(path) -> str:
    """The ancestors' codes, root first; engine paths are (code, title) pairs."""
    if isinstance(path, str):
        return path
    return " › ".join(str(p[0] if isinstance(p, tuple) else getattr(p, "code", p)) for p in path or [])


@dataclass
class HistoryEntry:
    """One decision in the recent list; `tag` is what the panel's owner attached (a review queue's row)."""

    correction_id: int
    text: str
    code: str | None     # None: the text cannot be coded
    kind: str
    tag: Any = None

    def label(self) -> str:
        return f"{self.code or 'cannot be coded'}  ←  {self.text}   ({self.kind})"


class CodingPanel(QWidget):
    """Type a description (or get one from a review queue); the keys of desktop/keys.py decide."""

    decided = Signal(object)   # HistoryEntry
    skipped = Signal(str)      # the text skipped
    undone = Signal(object)    # HistoryEntry removed
    revised = Signal(object)   # HistoryEntry with its new code

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, *, load_recent: bool = True) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.load_recent = load_recent
        self.backend: CodingBackend | None = None
        self.suggestions: list[SuggestionLike] = []
        self.suggested_text = ""
        self.last_latency_ms: float | None = None
        self.decisions = 0
        self.tag: Any = None   # attached to the next decision (the owner's context, e.g. a queue row)
        layout = QVBoxLayout(self)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        layout.addWidget(self.model_label)
        self.text = QLineEdit()
        self.text.setPlaceholderText("Type a description of the activity…   ↑/↓ choose · Enter accept · "
                                     "Ctrl+K another code · Ctrl+S skip · Ctrl+U cannot be coded · Ctrl+Z undo")
        font = QFont(self.text.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.text.setFont(font)
        self.text.textChanged.connect(self._text_changed)
        self.text.returnPressed.connect(self.accept_current)
        layout.addWidget(self.text)

        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Probability", "Code", "Title", "Path", "Judge"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.currentCellChanged.connect(lambda row, *_: self._highlight(row))
        self.table.cellDoubleClicked.connect(lambda row, _col: self.accept_row(row))
        self.details = CodeDetails(compact=True)
        splitter = QSplitter()
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setSizes([640, 480])
        layout.addWidget(splitter, 1)
        # the activity the text names, when the coder moves toward it (title heads: 'wholesale', 'retail')
        self.activity = QLabel()
        self.activity.setWordWrap(True)
        self.activity.hide()
        layout.addWidget(self.activity)
        self.auto_opinion = QCheckBox("Second opinion by itself when the coder is unsure and you pause "
                                      f"({keys.AUTO_OPINION})")
        self.auto_opinion.setFocusPolicy(Qt.FocusPolicy.NoFocus)    # the text field keeps the keys
        self.auto_opinion.setChecked(bool(app_settings().value(AUTO_OPINION_SETTING, False, type=bool)))
        self.auto_opinion.setEnabled(False)                         # until a backend with a local LLM
        self.auto_opinion.toggled.connect(self._auto_toggled)
        layout.addWidget(self.auto_opinion)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Recent decisions (Ctrl+H: ↑/↓ move, Enter change the code, Ctrl+U cannot be "
                                "coded, Delete undo, Esc back):"))
        self.history = QListWidget()
        self.history.setMaximumHeight(120)
        self.history.installEventFilter(self)
        self.text.installEventFilter(self)   # after every widget the filter looks at exists
        self.history.itemDoubleClicked.connect(lambda item: self.revise_entry(self.history.row(item)))
        layout.addWidget(self.history)

        self.suggester = SuggestThread(self)
        QApplication.instance().aboutToQuit.connect(self.shutdown)
        self.suggester.worker.ready.connect(self._suggestions_ready)
        self.suggester.worker.failed.connect(lambda _id, exc: self.ctx.report(exc))
        self._timer = QTimer(self, singleShot=True, interval=SUGGEST_DELAY_MS, timeout=self._request)
        self.opinion: Any = None           # the last second opinion shown (engine.assist.judge.SecondOpinion)
        self._judging = False
        self._opinion_signals = _OpinionSignals(self)
        self._opinion_signals.ready.connect(self._opinion_ready)
        self._opinion_signals.failed.connect(self._opinion_failed)
        self._auto_asked = False           # whether the opinion on its way was asked by the idle timer
        self._idle = QTimer(self, singleShot=True, interval=IDLE_OPINION_MS, timeout=self._idle_elapsed)
        ctx.runner.busy_changed.connect(lambda busy: None if busy else self._arm_idle())
        QShortcut(QKeySequence(keys.PICK), self, activated=self.pick_other)
        for row in range(TOP_K):
            QShortcut(QKeySequence(f"Alt+{row + 1}"), self, activated=lambda r=row: self.accept_row(r))

    # backend ----------------------------------------------------------------------------------
    def set_backend(self, backend: CodingBackend | None) -> None:
        old_close = getattr(self.backend, "close", None)
        if old_close is not None and backend is not self.backend and not self._judging:
            old_close()   # the judge's LLM (a GB of memory) goes with the coder it served
        self.backend = backend
        self.opinion = None
        self._idle.stop()
        available = getattr(backend, "judge_available", None)
        self.auto_opinion.setEnabled(bool(available is not None and self.ctx.guarded(available)()))
        self.auto_opinion.setToolTip("" if self.auto_opinion.isEnabled() else
                                     "Needs a local LLM: add one on the Models page.")
        self.suggester.set_backend(backend)
        self.text.setEnabled(backend is not None)
        if backend is None:
            self.model_label.setText("No trained coder yet: train one on the Train & evaluate page.")
        else:
            coverage = backend.coverage()
            self.model_label.setText(f"Coder: {backend.describe()}" + (f"\n⚠ {coverage}" if coverage else ""))
        self.history.clear()
        if backend is not None and self.load_recent:
            for stored in self.ctx.guarded(backend.recent)(HISTORY_SIZE) or []:
                entry = HistoryEntry(stored.id, stored.text, stored.chosen_code, stored.kind)
                self._add_history(entry, at_end=True)
        self._show([])
        if self.text.text().strip():
            self._request()

    # suggestions ------------------------------------------------------------------------------
    def set_text(self, text: str, tag: Any = None) -> None:
        """Show a text to decide on (a review queue's row); decisions on it carry `tag`."""
        self.tag = tag
        self.text.setText(text)

    def _text_changed(self, _text: str) -> None:
        self._idle.stop()
        self._timer.start()

    def _request(self) -> None:
        if self.backend is not None:
            self.suggester.request(self.text.text(), TOP_K)

    def _suggestions_ready(self, _request_id: int, text: str, suggestions: list, elapsed_ms: float) -> None:
        if text != self.text.text():
            return  # the user typed on; a newer request is on its way
        self.last_latency_ms = elapsed_ms
        self.suggested_text = text
        self._show(suggestions)
        self._show_activities(text if suggestions else "")
        self._arm_idle()
        if not suggestions and text.strip() and self.backend is not None:
            problem = self.ctx.guarded(self.backend.problem)(text)
            if problem:
                self.status.setText(f"No suggestions: {problem}. Ctrl+K picks a code, Ctrl+U marks the text as "
                                    "one that cannot be coded, Ctrl+S skips it.")

    def _show(self, suggestions: Sequence[SuggestionLike]) -> None:
        self.suggestions = list(suggestions)
        self.table.setRowCount(len(self.suggestions))
        for row, s in enumerate(self.suggestions):
            values = [f"{s.probability:.0%}", s.code, s.title, format_path(s.path)]
            values.append("")   # the Judge column, filled by a second opinion
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                elif col == 2:
                    item.setToolTip(term_tooltip("n.e.c.") if "n.e.c." in s.title else "")
                self.table.setItem(row, col, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)
        if self.suggestions:
            # setCurrentCell emits nothing when row 0 is already current (a new list for a longer text),
            # so the notes are refreshed here, not only from the signal.
            self.table.blockSignals(True)
            self.table.setCurrentCell(0, 0)
            self.table.blockSignals(False)
            self._highlight(0)
        else:
            self.details.show_code(None, None)

    def _show_activities(self, text: str) -> None:
        """Say which activity the text names when the coder ranks the codes that lead with it higher."""
        named = getattr(self.backend, "activities", None)
        found = list(self.ctx.guarded(named)(text) or []) if named is not None and text.strip() else []
        if not found:
            self.activity.hide()
            return
        words = " and ".join(f"“{w}”" for w in found)
        self.activity.setText(f"The text names the activity {words}: codes whose titles lead with "
                              f"{'it' if len(found) == 1 else 'them'} are ranked higher.")
        self.activity.show()

    # the LLM judge's second opinion ---------------------------------------------------------------
    @property
    def judging(self) -> bool:
        """True while the judge's worker thread is reading a text (a second opinion is on its way)."""
        return self._judging

    def _unsure(self) -> bool:
        threshold = getattr(self.backend, "judge_threshold", None)
        if len(self.suggestions) < 2 or threshold is None:
            return False
        value = self.ctx.guarded(threshold)()          # None when the project could not be read (reported)
        return value is not None and self.suggestions[0].probability < value

    def _wants_auto(self) -> bool:
        """An opinion by itself is due: on, unsure fresh suggestions, none asked or shown for this text."""
        text = self.text.text()
        return (self.auto_opinion.isEnabled() and self.auto_opinion.isChecked() and not self._judging
                and bool(text.strip()) and text == self.suggested_text
                and getattr(self.opinion, "text", None) != text and self._unsure())

    def _arm_idle(self) -> None:
        if self._wants_auto():
            self._idle.start()

    def _idle_elapsed(self) -> None:
        if not self._wants_auto():
            return
        if self.ctx.runner.busy:
            return        # the machine is busy: asked again when the last job ends (busy_changed)
        self.second_opinion(auto=True)

    def toggle_auto_opinion(self) -> None:
        if not self.auto_opinion.isEnabled():
            self.status.setText("Second opinions need a local LLM: add one on the Models page.")
            return
        self.auto_opinion.setChecked(not self.auto_opinion.isChecked())

    def _auto_toggled(self, on: bool) -> None:
        settings = app_settings()
        settings.setValue(AUTO_OPINION_SETTING, on)
        settings.sync()
        self.status.setText("Second opinions by themselves: " + (
            "on. When the coder is unsure and you pause, the local LLM reads the top 5." if on else "off."))
        if on:
            self._arm_idle()
        else:
            self._idle.stop()

    def second_opinion(self, auto: bool = False) -> None:
        """Ask the local LLM about the current top 5 on a worker thread; the answer marks the table.
        `auto`: asked by the idle timer (the coder is unsure and the coder paused), not by the key."""
        ask = getattr(self.backend, "second_opinion", None)
        if ask is None or not self.text.text().strip() or not self.suggestions:
            self.status.setText("A second opinion needs suggestions to judge.")
            return
        if not self._fresh():
            return
        if self._judging:
            self.status.setText("The local LLM is still reading the previous text.")
            return
        text = self.text.text()
        self._judging = True
        self._auto_asked = auto
        self._idle.stop()
        self.status.setText(("The coder is unsure: asking" if auto else "Asking")
                            + " the local LLM for a second opinion on the top 5 (a few seconds on a CPU)…")
        signals = self._opinion_signals

        def work() -> None:
            try:
                signals.ready.emit(text, ask(text))
            except Exception as exc:  # noqa: BLE001 - shown in the message bar
                signals.failed.emit(exc)

        threading.Thread(target=work, name="statcoder-judge", daemon=True).start()

    def _opinion_failed(self, exc: Exception) -> None:
        self._judging = False
        if self._auto_asked and self.auto_opinion.isChecked():
            # not asked again at every pause: off for this panel (the remembered setting stays as it is)
            self.auto_opinion.blockSignals(True)
            self.auto_opinion.setChecked(False)
            self.auto_opinion.blockSignals(False)
            self.status.setText(f"No second opinion, and none by itself until turned on again "
                                f"({keys.AUTO_OPINION}).")
        else:
            self.status.setText("No second opinion.")
        self.ctx.report(exc)

    def _opinion_ready(self, text: str, opinion: Any) -> None:
        self._judging = False
        if text != self.text.text() or text != self.suggested_text:
            return   # the user moved on
        self.opinion = opinion
        judged = dict(opinion.judge)
        for row, s in enumerate(self.suggestions):
            p = judged.get(s.code)
            mark = "" if p is None else f"{p:.0%}" + (" ★" if s.code == opinion.preferred else "")
            item = QTableWidgetItem(mark)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, JUDGE_COLUMN, item)
        self.table.resizeColumnToContents(JUDGE_COLUMN)
        shown = next((c for c in opinion.shown if c.code == opinion.preferred), None)
        lines = "; ".join(shown.lines) if shown is not None else ""      # the lines the judge read
        calibrated = "" if opinion.fitted else " (not yet calibrated for this coder)"
        self.status.setText(f"Second opinion{calibrated}, {opinion.seconds:.0f} s: the local LLM prefers "
                            f"{opinion.preferred} {shown.title if shown else ''}"
                            + (f" — it was shown: {lines}" if lines else "") + ".")

    def _highlight(self, row: int) -> None:
        if 0 <= row < len(self.suggestions):
            self.details.show_code(self.ctx.project, self.suggestions[row].code)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.text and event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            handled = self._text_key(event, press=event.type() == QEvent.Type.KeyPress)
            if handled:
                event.accept()
                return True
        elif watched is self.history and event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            # On the override, claim the list's keys: Esc would otherwise dismiss the message bar.
            if self._history_key(event, press=event.type() == QEvent.Type.KeyPress):
                event.accept()
                return True
        return super().eventFilter(watched, event)

    def _text_key(self, event, *, press: bool) -> bool:
        """Keys of the text field: True when the panel handles the key (on a shortcut override: claims it)."""
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down) and not event.modifiers():
            if press and self.suggestions:
                step = -1 if event.key() == Qt.Key.Key_Up else 1
                row = max(0, min(len(self.suggestions) - 1, self.table.currentRow() + step))
                self.table.setCurrentCell(row, 0)
            return press
        actions: list[tuple[str, Callable[[], Any]]] = [
            (keys.SKIP, self.skip), (keys.UNCODABLE, self.mark_uncodable), (keys.UNDO, self.undo_last),
            (keys.HISTORY, self.focus_history), (keys.SECOND_OPINION, self.second_opinion),
            (keys.AUTO_OPINION, self.toggle_auto_opinion)]
        for binding, action in actions:
            if keys.matches(event, binding):
                if press:
                    action()
                return True   # also claims the shortcut, so QLineEdit's own Ctrl+Z or Ctrl+U do not run
        if press and event.key() == Qt.Key.Key_Backspace and not event.modifiers() and not self.text.text():
            self.undo_last()
            return True
        return False

    def _history_key(self, event, *, press: bool) -> bool:
        row = self.history.currentRow()
        actions: list[tuple[bool, Callable[[], Any]]] = [
            (keys.matches(event, keys.HISTORY_LEAVE), self.text.setFocus),
            (keys.matches(event, keys.HISTORY_EDIT) or event.key() == Qt.Key.Key_Enter, lambda: self.revise_entry(row)),
            (keys.matches(event, keys.UNCODABLE), lambda: self.revise_entry(row, uncodable=True)),
            (keys.matches(event, keys.HISTORY_UNDO) or keys.matches(event, keys.UNDO), lambda: self.undo_entry(row)),
        ]
        for hit, action in actions:
            if hit:
                if press:
                    action()
                return True
        return False

    # decisions --------------------------------------------------------------------------------
    def accept_current(self) -> None:
        self.accept_row(self.table.currentRow())

    def _fresh(self) -> bool:
        if self.suggested_text != self.text.text():
            # A key pressed before the newest suggestions arrived: never act on a stale list.
            self._timer.stop()
            self._request()
            self.status.setText("Suggestions are updating; press the key again.")
            return False
        return True

    def accept_row(self, row: int) -> None:
        if not self._fresh():
            return
        if 0 <= row < len(self.suggestions):
            self.decide(self.suggestions[row].code)
        elif self.text.text().strip():
            self.status.setText("Nothing to accept: Ctrl+K picks a code, Ctrl+U marks the text as one that "
                                "cannot be coded, Ctrl+S skips it.")

    def _picker(self, initial: Sequence[str]) -> str | None:
        picker = CodePicker(self.ctx.project, self, initial_codes=initial)
        self.open_picker_hook(picker)
        if picker.exec() and picker.chosen:
            return picker.chosen
        return None

    def pick_other(self) -> str | None:
        if self.ctx.project is None or self.backend is None or not self.text.text().strip():
            return None
        chosen = self._picker([s.code for s in self.suggestions])
        if chosen:
            self.decide(chosen)
        return chosen

    # Tests replace this to drive the modal picker; by default it does nothing.
    open_picker_hook: Callable[[CodePicker], None] = staticmethod(lambda picker: None)

    def decide(self, code: str) -> None:
        self._store(code)

    def mark_uncodable(self) -> None:
        """Store the text as one that cannot be coded (never a training text)."""
        if self.text.text().strip() and self._fresh():
            self._store(None)

    def _store(self, code: str | None) -> None:
        text = self.text.text().strip()
        if not text or self.backend is None:
            return
        try:
            decision = self.backend.record(text, code, self.suggestions)
        except Exception as exc:  # noqa: BLE001 - engine errors go to the message bar
            self.ctx.report(exc)
            return
        entry = HistoryEntry(decision.correction_id, text, code, decision.kind, self.tag)
        self.decisions += 1
        self._add_history(entry)
        what = f"{code} as a {decision.kind}" if code else "the text as one that cannot be coded"
        self.status.setText(f"Stored {what}. {plural(self.decisions, 'decision')} this session · Ctrl+Z undoes it.")
        self.tag = None
        self.text.clear()
        self._show([])
        self.ctx.apply_changes(Changes(corrections=True))
        self.decided.emit(entry)

    def skip(self) -> None:
        """Go on without storing anything (in a review queue the row stays to be reviewed)."""
        text = self.text.text()
        if not text.strip():
            return
        self.status.setText("Skipped: nothing stored.")
        self.tag = None
        self.text.clear()
        self._show([])
        self.skipped.emit(text)

    def _add_history(self, entry: HistoryEntry, *, at_end: bool = False) -> None:
        item = QListWidgetItem(entry.label())
        item.setData(Qt.ItemDataRole.UserRole, entry)
        if at_end:
            self.history.addItem(item)
        else:
            self.history.insertItem(0, item)
        while self.history.count() > HISTORY_SIZE:
            self.history.takeItem(self.history.count() - 1)

    def entry(self, row: int) -> HistoryEntry | None:
        item = self.history.item(row)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def undo_last(self) -> None:
        if self.history.count():
            self.undo_entry(0)
        else:
            self.status.setText("Nothing to undo.")

    def undo_entry(self, row: int) -> None:
        """Remove a decision and its training text; the text comes back to be decided again."""
        entry = self.entry(row)
        if entry is None or self.backend is None:
            return
        try:
            self.backend.undo(entry.correction_id)
        except Exception as exc:  # noqa: BLE001 - engine errors go to the message bar
            self.ctx.report(exc)
            return
        self.history.takeItem(row)
        self.decisions = max(0, self.decisions - 1)
        self.status.setText(f"Undone: {entry.code or 'cannot be coded'} ← {entry.text} (and its training text).")
        self.ctx.apply_changes(Changes(corrections=True))
        self.undone.emit(entry)
        if row == 0 and not self.text.text().strip():
            self.set_text(entry.text, entry.tag)

    def focus_history(self) -> None:
        if self.history.count():
            self.history.setFocus()
            if self.history.currentRow() < 0:
                self.history.setCurrentRow(0)

    def revise_entry(self, row: int, *, uncodable: bool = False) -> None:
        """Change a recent decision: another code from the picker, or 'cannot be coded'."""
        entry = self.entry(row)
        if entry is None or self.backend is None or self.ctx.project is None:
            return
        code = None if uncodable else self._picker([entry.code] if entry.code else [])
        if code is None and not uncodable:
            return
        try:
            decision = self.backend.revise(entry.correction_id, code)
        except Exception as exc:  # noqa: BLE001 - engine errors go to the message bar
            self.ctx.report(exc)
            return
        entry.code, entry.kind = code, decision.kind
        item = self.history.item(row)
        item.setText(entry.label())
        item.setData(Qt.ItemDataRole.UserRole, entry)
        self.status.setText(f"Changed to {code or 'cannot be coded'}: {entry.text}")
        self.ctx.apply_changes(Changes(corrections=True))
        self.revised.emit(entry)

    def shutdown(self) -> None:
        self._idle.stop()
        self.suggester.stop()
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
