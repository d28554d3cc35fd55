"""The main window: a sidebar of pages in workflow order, the message bar, menus and shortcuts."""

from __future__ import annotations

import gc
import importlib
import threading
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
    QStackedWidget, QVBoxLayout, QWidget,
)

from engine import __version__
from engine.coders.fasttext.serve import set_out_of_process
from engine.store.check import CheckReport, check_project
from engine.store.project import Project

from .context import AppContext, Page
from .help import HelpDialog
from .jobs import Job, JobRunner
from .messages import MessageBar, ask_yes_no
from .pages import available_pages
from .settings import add_recent_project, app_settings, recent_projects

FILE_FILTER = "statcoder projects (*.statcoder);;All files (*)"


def preload_native_libraries() -> None:
    """Load llama.cpp's and fastText's shared libraries once, before the window shows.

    Importing them holds the GIL for the whole dlopen (100 ms and more on a busy machine), and PySide's
    import hook reads the source of every new module; done lazily inside a job, or from a timer once
    the event loop runs, that froze the event loop for 100-200 ms just as a job's progress started.
    Before the event loop starts, it only adds to the start-up time.
    """
    for module in ("llama_cpp", "fasttext"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue


class MainWindow(QMainWindow):
    # (project, CheckReport or the exception the check raised), emitted from the check's thread
    project_checked = Signal(object, object)

    def __init__(self) -> None:
        super().__init__()
        self.last_check: CheckReport | BaseException | None = None
        self._check_thread: threading.Thread | None = None
        self.project_checked.connect(self._project_checked)
        self.setWindowTitle(f"statcoder {__version__}")
        self.resize(1280, 820)
        self.settings = app_settings()
        self.runner = JobRunner(self)
        self.messages = MessageBar()
        self.ctx = AppContext(self.runner, self.messages, self)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(190)
        self.sidebar.setIconSize(QSize(0, 0))
        self.sidebar.setStyleSheet("#sidebar { font-size: 11pt; } #sidebar::item { padding: 8px 6px; }")
        self.stack = QStackedWidget()
        self.pages: dict[str, Page] = {}
        for number, page_class in enumerate(available_pages(), start=1):
            page = page_class(self.ctx)
            self.pages[page_class.key] = page
            self.stack.addWidget(page)
            item = QListWidgetItem(f"{number}  {page.title}")
            item.setToolTip(f"{page.title} (Ctrl+{number})")
            self.sidebar.addItem(item)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 0)
        right_layout.addWidget(self.stack, 1)
        self.messages.attach(right)   # floats over the page's bottom: showing it moves nothing
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sidebar)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)

        self.project_label = QLabel("no project open")
        self.jobs_label = QLabel()
        self.statusBar().addWidget(self.project_label, 1)
        self.statusBar().addPermanentWidget(self.jobs_label)
        self.runner.job_started.connect(self._jobs_changed)
        self.runner.job_finished.connect(self._jobs_changed)
        self.ctx.project_changed.connect(self._project_changed)
        self.ctx.show_code.connect(lambda _code: self.show_page("classification"))
        self.ctx.show_page.connect(self.show_page)

        self._build_menus()
        self._restore_state()
        self.ctx.set_project(None)
        self.sidebar.setCurrentRow(0)
        # A full garbage collection holds the GIL while it walks every object; from a worker thread it
        # stalled the event loop by 60-90 ms. Freezing the start-up heap (modules, Qt wrappers) takes
        # it out of those walks, so collections during jobs only visit the jobs' own objects.
        preload_native_libraries()
        # fastText holds the GIL while it loads a model or predicts a batch; in the app it runs in a
        # child process instead (engine.coders.fasttext.serve), so no Qt slot ever waits for it.
        set_out_of_process(True)
        gc.collect()
        gc.freeze()

    # menus and shortcuts ---------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&New project…", QKeySequence.StandardKey.New, self.new_project_dialog)
        self._action(file_menu, "&Open project…", QKeySequence.StandardKey.Open, self.open_project_dialog)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._action(file_menu, "&Close project", "Ctrl+Shift+W", self.close_project)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        go_menu = self.menuBar().addMenu("&Go")
        for row in range(self.sidebar.count()):
            page = self.stack.widget(row)
            self._action(go_menu, page.title, f"Ctrl+{row + 1}", lambda r=row: self.sidebar.setCurrentRow(r))
        jobs_menu = self.menuBar().addMenu("&Jobs")
        self._action(jobs_menu, "Cancel all jobs", "Ctrl+Shift+X", lambda: self.runner.cancel_all("cancelled by the user"))
        self._action(jobs_menu, "Dismiss message", "Esc", self.messages.clear)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Help for this page", "F1", self.show_help)
        self.help_dialog: HelpDialog | None = None

    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = recent_projects(self.settings)
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in paths:
            action = self.recent_menu.addAction(str(path))
            action.triggered.connect(lambda _checked=False, p=path: self.open_project(p))

    @property
    def current_page_key(self) -> str:
        page = self.stack.currentWidget()
        return getattr(page, "key", "project")

    def show_help(self) -> HelpDialog:
        """F1: the offline help of the page on screen (its paragraph, terms and keys)."""
        if self.help_dialog is not None:
            self.help_dialog.close()
        self.help_dialog = HelpDialog(self.current_page_key, self)
        self.help_dialog.open()
        return self.help_dialog

    def show_page(self, key: str) -> None:
        if key in self.pages:
            self.sidebar.setCurrentRow(self.stack.indexOf(self.pages[key]))

    # projects -------------------------------------------------------------------------------
    def new_project_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New project", str(Path.home() / "project.statcoder"), FILE_FILTER)
        if path:
            self.new_project(path)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(Path.home()), FILE_FILTER)
        if path:
            self.open_project(path)

    def new_project(self, path: str | Path) -> Project | None:
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(Project.SUFFIX)
        return self._set_project(lambda: Project.create(path))

    def open_project(self, path: str | Path) -> Project | None:
        return self._set_project(lambda: Project.open(path))

    def _set_project(self, make) -> Project | None:
        if self.runner.busy:
            self.ctx.notify("Wait for the running job to finish, or cancel it, before switching projects.", "warning")
            return None
        project = self.ctx.guarded(make)()
        if project is None:
            return None
        summary = self.ctx.guarded(project.summary)()   # a file too damaged to count is not opened
        if summary is None:
            project.close()
            return None
        self.messages.clear()
        add_recent_project(project.path, self.settings)
        self.ctx.set_project(project)
        self.start_quick_check(project)
        if project.read_only:
            self.ctx.notify("This project is read-only: you can look, but nothing can be saved.", "warning")
        if self.stack.currentIndex() == 0 and summary["codes"] and "classification" in self.pages:
            self.show_page("classification")
        return project

    def start_quick_check(self, project: Project) -> None:
        """Check the file (structure, references, model files) on a plain thread: a damaged page
        otherwise goes unnoticed, and reading every page must not stall the event loop."""
        self.last_check = None

        path = project.path

        def work() -> None:
            # Its own Project, not the app's: closing or switching the app's project (close_all) while
            # the check reads must not close the connection under it (that crashed sqlite3).
            try:
                with Project.open(path) as own:
                    result: CheckReport | BaseException = check_project(own, quick=True)
            except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
                result = exc
            self.project_checked.emit(project, result)

        self._check_thread = threading.Thread(target=work, name="statcoder-project-check", daemon=True)
        self._check_thread.start()

    def _project_checked(self, project: Project, result: object) -> None:
        self.last_check = result  # type: ignore[assignment]
        if project is not self.ctx.project:
            return
        if isinstance(result, BaseException):
            self.ctx.notify(f"The project could not be checked: {result}", "warning")
        elif not result.ok:
            more = len(result.problems) - 3
            self.ctx.notify("The project file has problems: " + "; ".join(result.problems[:3])
                            + (f" (and {more} more)" if more > 0 else "") + ". Restore the file from a backup.",
                            "error")

    def close_project(self) -> None:
        if self.runner.busy:
            self.ctx.notify("A job is running on this project; cancel it first.", "warning")
            return
        self.ctx.set_project(None)
        self.show_page("project")

    def _project_changed(self, project: Project | None) -> None:
        name = f" — {project.path.name}" if project else ""
        self.setWindowTitle(f"statcoder {__version__}{name}")
        self.project_label.setText(str(project.path) if project else "no project open")
        for row in range(self.sidebar.count()):
            page = self.stack.widget(row)
            item = self.sidebar.item(row)
            enabled = project is not None or not page.needs_project
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEnabled if enabled
                          else item.flags() & ~Qt.ItemFlag.ItemIsEnabled)

    def _jobs_changed(self, _job: Job) -> None:
        names = [job.name for job in self.runner.active]
        self.jobs_label.setText(("running: " + ", ".join(names)) if names else "")

    # window state and closing ----------------------------------------------------------------
    def _restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.runner.busy:
            names = ", ".join(job.name for job in self.runner.active)
            if not ask_yes_no(self, "A job is running",
                              f"{names} is still running.\n\nCancel it and quit? Work done so far is kept; "
                              "a generation can be resumed later."):
                event.ignore()
                return
            self.runner.cancel_all()
            self.runner.wait()
            # Deliver the jobs' last signals before the widgets go. A local event loop, not the static
            # QApplication.processEvents(): in PySide6 6.12 on Python 3.11 that one drops a reference to
            # None on every call (until Python aborts with "deallocating None").
            QEventLoop().processEvents()
        for page in self.pages.values():
            if hasattr(page, "shutdown"):
                page.shutdown()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.ctx.set_project(None)
        event.accept()
