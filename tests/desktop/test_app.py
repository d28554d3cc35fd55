"""The main window: pages in workflow order, shortcuts, projects, settings, errors and closing during a job."""

from __future__ import annotations

import time

from PySide6.QtCore import QSettings, Qt

from engine import __version__
from engine.errors import StatcoderError
from tests.desktop.conftest import wait_jobs


def test_main_window_lists_pages_in_workflow_order(window):
    assert window.windowTitle() == f"statcoder {__version__}"
    titles = [window.sidebar.item(i).text().split(maxsplit=1)[1] for i in range(window.sidebar.count())]
    assert titles[:2] == ["Project", "Classification"]
    assert titles == [t for t in ["Project", "Classification", "LLMs", "Generate", "Review",
                                  "Train & evaluate", "Code"] if t in titles]
    # no project: only the project page is usable
    assert not window.pages["classification"].isEnabled()


def test_new_project_enables_pages_and_ctrl_digits_switch(window, qtbot, tmp_path):
    project = window.new_project(tmp_path / "office")
    assert project is not None and project.path.name == "office.statcoder"
    assert window.pages["classification"].isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.pages["classification"]
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.pages["project"]
    page = window.pages["project"]
    assert page.path_label.text() == str(project.path)
    assert page.values["codes"].text() == "0"


def test_recent_projects_and_geometry_persist(qtbot, tmp_path, answer, isolated_qsettings):
    from desktop.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.show()
    first.new_project(tmp_path / "a.statcoder")
    first.resize(1150, 760)
    size = (first.width(), first.height())
    first.close()
    ini = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "statcoder", "desktop").fileName()
    assert ini.startswith(str(isolated_qsettings))

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    # the offscreen screen is 800 px wide, so Qt clamps the restored width; the height is kept
    assert second.height() == size[1] == 760
    recent = second.pages["project"].recent
    assert recent.count() == 1
    assert recent.item(0).data(Qt.ItemDataRole.UserRole) == str((tmp_path / "a.statcoder").resolve())
    # Enter on a recent project opens it
    recent.setCurrentRow(0)
    recent.itemActivated.emit(recent.item(0))
    assert second.ctx.project is not None and second.ctx.project.path.name == "a.statcoder"


def test_expected_error_is_one_message_without_traceback(window, tmp_path):
    bad = tmp_path / "not-a-project.statcoder"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    assert window.open_project(bad) is None
    assert window.messages.isVisible()
    assert window.messages.level == "error"
    assert "is not a statcoder project file" in window.messages.text
    assert window.messages.details is None and not window.messages.details_button.isVisible()
    assert window.ctx.project is None


def test_unexpected_error_offers_details(window, qtbot):
    def broken(progress, cancel):
        raise KeyError("boom")

    window.ctx.run("Broken job", broken)
    wait_jobs(qtbot, window)
    assert window.messages.text.startswith("Unexpected error (KeyError)")
    assert "Traceback" in window.messages.details
    assert not window.messages.details_button.isHidden()


def test_engine_error_from_a_job_reaches_the_bar(window, qtbot):
    def failing(progress, cancel):
        raise StatcoderError("the model file is missing: /x.gguf")

    window.ctx.run("Failing job", failing)
    wait_jobs(qtbot, window)
    assert window.messages.text == "the model file is missing: /x.gguf"
    assert window.messages.details is None


def slow_job(progress, cancel):
    from engine.jobs import ProgressMeter

    meter = ProgressMeter(10_000, progress, min_interval_s=0)
    for i in range(10_000):
        cancel.check()
        time.sleep(0.002)
        meter.update(i + 1, "working", samples_s=500.0)
    return "finished"


def test_closing_during_a_job_asks_then_cancels(window, qtbot, answer):
    outcome = {}
    job = window.ctx.run("Slow job", slow_job, on_cancel=lambda reason: outcome.setdefault("cancelled", reason),
                         on_success=lambda r: outcome.setdefault("result", r))
    qtbot.waitUntil(lambda: job.last_progress is not None, timeout=5000)
    answer.value = False
    window.close()
    assert answer.asked and "Slow job" in answer.asked[0]
    assert window.isVisible() and window.runner.busy and not job.cancelled
    answer.value = True
    window.close()   # returns once the job has stopped: checked below, no time limit needed
    assert not window.isVisible()
    assert job.done and job.cancelled
    assert "result" not in outcome and "closed" in outcome["cancelled"]


def test_opening_a_project_checks_it_off_the_gui_thread(window, qtbot, tmp_path, _nace_template, monkeypatch):
    """Issue 12: a damaged page went unnoticed; the window checks the file on a worker thread."""
    import os
    import shutil
    import threading

    import engine.store.check as check

    healthy = tmp_path / "healthy.statcoder"
    shutil.copy(_nace_template, healthy)
    threads: list[str] = []
    real = check.check_project

    def spy(project, **kwargs):
        threads.append(threading.current_thread().name)
        return real(project, **kwargs)

    import desktop.main_window
    monkeypatch.setattr(desktop.main_window, "check_project", spy)
    window.open_project(healthy)
    qtbot.waitUntil(lambda: window.last_check is not None, timeout=20_000)
    assert window.last_check.ok and threads and threads[0] != threading.main_thread().name

    damaged = tmp_path / "damaged.statcoder"
    shutil.copy(_nace_template, damaged)
    size = damaged.stat().st_size
    with open(damaged, "r+b") as handle:
        for offset in range(size // 3, size // 3 + 40 * 4096, 4096):
            handle.seek(offset)
            handle.write(os.urandom(4096))
    if window.open_project(damaged) is not None:
        qtbot.waitUntil(lambda: window.last_check is not None, timeout=20_000)
        assert not getattr(window.last_check, "ok", False)
    assert window.messages.level in ("error", "warning") and window.messages.isVisible()


def test_file_errors_are_one_line_not_unexpected(window):
    """Issue 12: a write to a read-only or full project is the file's state, said in one line."""
    import errno
    import sqlite3

    window.ctx.report(sqlite3.OperationalError("attempt to write a readonly database"))
    assert window.messages.details is None and "read-only" in window.messages.text
    window.ctx.report(OSError(errno.ENOSPC, "No space left on device", "/tmp/x.csv"))
    assert window.messages.details is None and "the disk is full" in window.messages.text


def test_the_quick_check_reads_through_its_own_connection(window, qtbot, _nace_template, tmp_path, monkeypatch):
    """The quick check runs on its own Project: the app closing every connection of its project
    (switching or closing it, `close_all`) while the check was inside PRAGMA quick_check closed the
    connection under it and crashed sqlite3 (a segmentation fault in the full suite)."""
    import shutil

    import desktop.main_window
    import engine.store.check as check

    checked = []
    real = check.check_project

    def spy(project, **kwargs):
        checked.append(project)
        return real(project, **kwargs)

    monkeypatch.setattr(desktop.main_window, "check_project", spy)
    path = tmp_path / "checked.statcoder"
    shutil.copy(_nace_template, path)
    project = window.open_project(path)
    qtbot.waitUntil(lambda: window.last_check is not None, timeout=20_000)
    assert window.last_check.ok and checked and checked[0] is not project and checked[0].path == project.path
    assert checked[0].open_connections == 0            # and it closed what it opened
