"""The event-loop gap meter used by the stall tests (the generation test in test_generation_pages.py)."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import traceback

from PySide6.QtCore import Qt, QTimer

from tests.desktop.conftest import wait_jobs

MAX_GAP_MS = 50


def runqueue_wait_ms(tid: int | str = "thread-self") -> float:
    """How long a thread of this process has waited for a CPU while runnable (Linux schedstat), in ms."""
    path = "/proc/thread-self/schedstat" if tid == "thread-self" else f"/proc/self/task/{tid}/schedstat"
    try:
        with open(path) as handle:
            return int(handle.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


class GapMeter:
    """A QTimer ticking every 10 ms; records the time between ticks and how much of it the OS took.

    On a shared, overloaded machine the OS may leave a thread waiting for a core for 100 ms. When
    that thread is the GUI thread, or whichever thread holds the GIL (a job's worker, a reader of a
    child's output), the event loop stalls through no fault of the app. So the GUI thread's runqueue
    time (from /proc/.../schedstat) plus the longest runqueue time of any other thread of the process
    is not counted. Slow code on the GUI thread, a long call holding the GIL or a garbage collection
    is not runqueue time, so every stall the app causes still counts. On an idle machine the two
    measures are the same.
    """

    def __init__(self, runner=None):
        self.runner = runner
        self.timer = QTimer(interval=10, timeout=self.tick)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.last = None
        self.last_wait = 0.0
        self.gaps: list[float] = []
        self.waits: list[float] = []

    def _os_wait(self) -> dict:
        waits = {"gui": runqueue_wait_ms()}
        gui = str(threading.get_native_id())
        try:
            tids = [t for t in os.listdir("/proc/self/task") if t != gui]
        except OSError:
            tids = [job.native_id for job in (self.runner.active if self.runner else []) if job.native_id]
        for tid in tids:
            waits[tid] = runqueue_wait_ms(tid)
        return waits

    def _waited(self, now: dict) -> float:
        """Runqueue time since the last tick: the GUI thread's, plus the most any other thread waited."""
        delta = {k: now[k] - self.last_wait.get(k, now[k]) for k in now}
        return delta.pop("gui", 0.0) + max(delta.values(), default=0.0)

    def start(self, qtbot=None):
        if qtbot is not None:
            # Let the event loop finish what came before (a previous test's windows being deleted, the
            # first paint of this one): the meter measures the job, not the set-up.
            qtbot.wait(300)
        self.last = time.perf_counter()
        self.last_wait = self._os_wait()
        self.timer.start()
        self.stacks: collections.Counter = collections.Counter()
        self._watching = os.environ.get("STATCODER_STALL_TRACE") == "1"
        if self._watching:  # diagnosis: where the GUI thread is while no tick comes
            threading.Thread(target=self._watch, args=(threading.main_thread().ident,), daemon=True).start()

    def _watch(self, gui: int) -> None:
        while self._watching:
            time.sleep(0.005)
            if time.perf_counter() - self.last > MAX_GAP_MS / 2000:
                frame = sys._current_frames().get(gui)
                if frame is not None:
                    self.stacks[" <- ".join(f"{s.filename.rsplit('/', 1)[-1]}:{s.lineno} {s.name}"
                                            for s in reversed(traceback.extract_stack(frame)[-8:]))] += 1

    def tick(self):
        # The gap runs from the end of the previous tick to the start of this one: the meter's own reads
        # of /proc (one file per thread, each giving the GIL away to a busy worker for up to the 5 ms switch
        # interval) are not the app's stall, and counted as one they made a pure-Python import "stall" 60 ms.
        now = time.perf_counter()
        wait = self._os_wait()
        self.gaps.append((now - self.last) * 1000)
        self.waits.append(self._waited(wait))
        self.last, self.last_wait = time.perf_counter(), wait

    def stop(self):
        self.timer.stop()
        self._watching = False

    @property
    def longest(self) -> float:
        """The longest gap the app is responsible for (the OS's runqueue wait taken out)."""
        return max(gap - min(wait, gap) for gap, wait in zip(self.gaps, self.waits))

    @property
    def longest_raw(self) -> float:
        return max(self.gaps)

    def report(self) -> str:
        elapsed = 0.0
        out = []
        for gap, wait in zip(self.gaps, self.waits):
            elapsed += gap
            if gap > MAX_GAP_MS / 2:
                out.append(f"{gap:.0f} ms ({wait:.0f} ms waiting for a CPU) at {elapsed:.0f} ms")
        stacks = "".join(f"\n  {n} x {stack}" for stack, n in self.stacks.most_common(6))
        return (f"{len(self.gaps)} ticks, longest raw gap {self.longest_raw:.0f} ms; long gaps: " + ", ".join(out)
                + (f"; GUI thread during gaps:{stacks}" if stacks else ""))


def train_page_for_10_11(window, trained_path, *, epochs: int):
    """The trained project open on the Train page, set to train fastText on real-train for 10-11."""
    window.open_project(trained_path)
    window.show_page("train")
    page = window.pages["train"]
    page.weights["synthetic"].setValue(0)
    page.scope.setText("10, 11")
    page.epochs.setValue(epochs)
    return page


def test_imports_keep_the_event_loop_ticking(window, qtbot, tmp_path):
    """Importing NACE (996 codes) and then the UK SIC index (15,957 texts) runs on a worker; the tree,
    summary and dialogs refresh afterwards, and no gap the app causes exceeds 50 ms."""
    from desktop.pages.imports import RealTextsImportDialog

    window.new_project(tmp_path / "imports.statcoder")
    page = window.pages["classification"]
    page.builtin.setCurrentIndex(page.builtin.findData("nace2"))
    meter = GapMeter(window.runner)
    meter.start(qtbot)
    page.import_selected_builtin()
    wait_jobs(qtbot, window)
    qtbot.waitUntil(lambda: page.tree_model.rowCount() == 21, timeout=10_000)
    dialog = RealTextsImportDialog(window.ctx, window)
    qtbot.addWidget(dialog)
    dialog.source.setCurrentIndex(dialog.source.findData("uksic-index"))
    dialog.do_import()
    wait_jobs(qtbot, window)
    qtbot.wait(300)
    meter.stop()
    assert dialog.result is not None and dialog.result.imported > 15_000
    assert "15,9" in page.summary.text() or "7,8" in page.summary.text(), page.summary.text()
    assert len(meter.gaps) > 20
    assert meter.longest <= MAX_GAP_MS, f"event loop stalled {meter.longest:.0f} ms: {meter.report()}"


def test_training_and_batch_coding_keep_the_event_loop_ticking(window, qtbot, trained_path, tmp_path):
    """Train a fastText coder from the Train page (child process, then evaluation and the charts'
    refresh), then batch-code a 5,000-row CSV: no gap the app causes exceeds 50 ms."""
    import csv

    # The test's own work on the GUI thread (writing the input file) is done before the meter starts.
    source = tmp_path / "answers.csv"
    words = ["bakery bread", "chocolate bars", "brewery beer", "fish processing", "sugar refining", "wine"]
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "answer"])
        writer.writerows((i, f"{words[i % len(words)]} {i}") for i in range(5_000))
    page = train_page_for_10_11(window, trained_path, epochs=20)
    meter = GapMeter(window.runner)
    meter.start(qtbot)
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=120_000)
    qtbot.wait(300)
    assert page.table.columnCount() == 2 and "Trained coder 2" in window.messages.text

    window.show_page("code")
    code_page = window.pages["code"]
    code_page.tabs.setCurrentWidget(code_page.batch)
    batch = code_page.batch
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    qtbot.wait(300)
    meter.stop()
    assert batch.last_result.rows == 5_000
    assert meter.longest <= MAX_GAP_MS, f"event loop stalled {meter.longest:.0f} ms: {meter.report()}"


def test_a_new_coder_reaches_the_pages_with_nothing_left_to_parse_on_the_gui_thread(window, qtbot, trained_path,
                                                                                     monkeypatch):
    """After a training, the Train, Code and Batch pages read the stored evaluations (JSON) and the new
    coder's coverage. The training job reads them first on its own thread, so the GUI thread only finds
    them (CI saw a 57 ms stall when the pages parsed them on the GUI thread)."""
    import threading

    import engine.coders.coverage as coverage_module
    import engine.evaluate.history as history

    on_gui: list[str] = []

    def watched(name, fn):
        def call(*args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                on_gui.append(name)
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(history, "evaluation_from_dict", watched("evaluation", history.evaluation_from_dict))
    monkeypatch.setattr(coverage_module, "coverage", watched("coverage", coverage_module.coverage))
    page = train_page_for_10_11(window, trained_path, epochs=5)
    on_gui.clear()   # opening the project reads the old coder's on the GUI thread; that is not measured
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=120_000)
    qtbot.wait(100)
    assert page.table.columnCount() == 2 and "Trained coder 2" in window.messages.text
    assert page.table.item(0, 1).text() == "402"    # the new coder's evaluation (402 test texts) is shown
    window.show_page("code")
    assert window.pages["code"].batch.backend.model.id == 2
    assert on_gui == []


def test_choosing_a_file_to_batch_code_reads_only_its_header(window, qtbot, trained_path, tmp_path):
    """The Batch tab lists a file's columns from its header and first rows: a file of any size, even one
    damaged far down (which the coding itself reports, naming the row), shows its columns at once."""
    source = tmp_path / "big.csv"
    with open(source, "wb") as handle:
        handle.write(b"id;answer\n")
        handle.writelines(f"{i};bakery bread {i}\n".encode() for i in range(20_000))
        handle.write(b"20001;caf\xe9 in latin-1\n")   # not UTF-8, far below the header
    window.open_project(trained_path)
    window.show_page("code")
    batch = window.pages["code"].batch
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    assert [batch.text_column.itemText(i) for i in range(batch.text_column.count())] == ["id", "answer"]
    assert batch.text_column.currentText() == "answer"
    assert "error" not in window.messages.text.lower()
