"""No connection outlives its use: the open file handles on a project stay flat over a long session of page
switches, suggestions, jobs and project switches, and drop to none when the project is closed."""

from __future__ import annotations

import gc
import os
import shutil
import sys

import pytest
from PySide6.QtCore import QEventLoop

from tests.desktop.conftest import wait_jobs

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts handles through /proc")


def handles(path) -> list[str]:
    """The process's open files that belong to the project: the file, its -wal and -shm."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return sorted(found)


def session_round(window, qtbot, panel, text: str) -> None:
    for key in window.pages:
        window.show_page(key)
    window.show_page("code")
    panel.text.setText(text)
    qtbot.waitUntil(lambda: panel.suggested_text == text and bool(panel.suggestions), timeout=10_000)
    review = window.pages["review"]
    review.open_dialog_hook = lambda dialog: dialog.label_check.setChecked(False)
    review.open_curation_dialog().accept()
    wait_jobs(qtbot, window)
    window.show_help().close()
    # A worker's connection goes with its thread's storage, through a reference cycle: at the next
    # garbage collection. Counted after one, so the numbers say what is really held.
    gc.collect()


def test_handles_stay_flat_over_a_long_session_and_close_with_the_project(window, qtbot, trained_path, tmp_path):
    other = tmp_path / "other" / trained_path.name
    shutil.copytree(trained_path.parent, other.parent)
    panel = window.pages["code"].panel
    window.open_project(trained_path)
    session_round(window, qtbot, panel, "bakery bread")
    first = len(handles(trained_path))
    # The GUI thread's connection (the file, the -wal, the shared -shm) and the files of connections
    # closed while it holds a lock, which SQLite keeps open for the next connection (POSIX locks).
    assert 0 < first <= 8, handles(trained_path)
    for n, text in enumerate(["beer brewing", "cider", "dairy products", "chocolate", "rusks", "pasta"]):
        # Switch to another project and back now and then: the old one's handles must all go.
        if n % 2:
            window.open_project(other)
            session_round(window, qtbot, panel, text)
            assert handles(trained_path) == [], "a connection to the project switched away from is still open"
            window.open_project(trained_path)
        session_round(window, qtbot, panel, text)
        # SQLite may keep one closed connection's file open a little longer (POSIX locks): slack of 2,
        # where a leak adds 2-3 handles every round.
        assert len(handles(trained_path)) <= first + 2, handles(trained_path)
    window.close_project()
    QEventLoop().processEvents()
    gc.collect()
    assert handles(trained_path) == [] and handles(other) == []


def test_a_project_that_fails_to_open_leaves_no_handle(project):
    from engine.errors import SchemaTooNewError
    from engine.store.project import Project

    path = project.path
    project.conn.execute("INSERT INTO _migrations (name, applied) VALUES ('m999_from_the_future', 'x')")
    project.close_all()
    assert handles(path) == []
    with pytest.raises(SchemaTooNewError):
        Project.open(path)
    assert handles(path) == []


def test_close_all_closes_what_it_safely_can_and_a_busy_thread_closes_its_own(project):
    """Closing another thread's connection under its running query crashes the interpreter (seen: a
    segfault in the project check thread when the window closed); close_all leaves live threads' own."""
    import gc
    import threading

    ready, go, done = threading.Event(), threading.Event(), threading.Event()
    ended = threading.Thread(target=lambda: project.conn.execute("SELECT 1").fetchone())
    ended.start()
    ended.join(10)

    def worker():
        project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()
        ready.set()
        go.wait(10)
        project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()   # retired: closes it, reconnects
        project.close()
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(10)
    project.conn.execute("SELECT 1").fetchone()
    project.close_all()
    assert project.open_connections == 1          # only the live worker's, which it will close itself
    go.set()
    done.wait(10)
    thread.join(10)
    gc.collect()   # the ended thread's connection is freed with its thread's storage (a cycle: at the next gc)
    assert project.open_connections == 0 and handles(project.path) == []


def test_the_static_process_events_is_not_used_it_drops_references_to_none():
    """PySide6 6.12 on Python 3.11: QApplication.processEvents() decrements None's refcount on every call."""
    from tests.conftest import REPO

    from PySide6.QtCore import QCoreApplication

    before = sys.getrefcount(None)
    for _ in range(100):
        QEventLoop().processEvents()
    assert sys.getrefcount(None) >= before - 10      # the local loop's processEvents is safe
    code_lines = [(p, line) for p in (REPO / "desktop").rglob("*.py")
                  for line in p.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("#")]
    offenders = [f"{p.relative_to(REPO)}: {line.strip()}" for p, line in code_lines
                 if "Application.processEvents(" in line]
    assert offenders == []
    assert QCoreApplication.instance() is not None
