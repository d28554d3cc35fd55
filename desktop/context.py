"""What every page shares: the open project, the job runner, and the message bar."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from engine.changes import Changes, changes_of
from engine.jobs import ProgressInfo
from engine.store.project import Project

from .jobs import Job, JobFunction, JobRunner
from .messages import MessageBar


class AppContext(QObject):
    """Pages talk to each other only through these signals, never by reaching into each other."""

    project_changed = Signal(object)   # Project | None
    changed = Signal(object)           # engine.changes.Changes: what an operation changed; pages refresh from it
    show_code = Signal(str)            # ask the classification page to show a code
    show_page = Signal(str)            # ask the main window to switch to a page (by its key)

    def __init__(self, runner: JobRunner, messages: MessageBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.messages = messages
        self.project: Project | None = None

    def apply_changes(self, changes: Changes | None) -> None:
        """Tell every page what an operation changed: one `changed` signal (nothing if nothing changed)."""
        if not changes:
            return
        self.changed.emit(changes)

    def set_project(self, project: Project | None) -> None:
        old = self.project
        self.project = project
        if old is not None and old is not project:
            old.close_all()   # every thread's connection (the suggestion thread's too): no handle outlives it
        self.project_changed.emit(project)

    def report(self, exc: BaseException) -> None:
        self.messages.show_exception(exc)

    def notify(self, message: str, level: str = "info") -> None:
        self.messages.show_message(message, level)

    def guarded(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a GUI-thread action so an engine error becomes a message instead of a crash."""

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown in the message bar, with details if unexpected
                self.report(exc)
                return None

        return call

    def run(self, name: str, fn: JobFunction, *, on_success: Callable[[Any], None] | None = None,
            on_progress: Callable[[ProgressInfo], None] | None = None,
            on_failure: Callable[[BaseException], None] | None = None,
            on_cancel: Callable[[str], None] | None = None,
            on_finish: Callable[[], None] | None = None) -> Job:
        """Run an engine call on a worker; failures go to the message bar unless on_failure takes them.

        A result with a `changes` attribute (engine.changes.Changes) is announced on `changed` once it
        has been handed to on_success.
        """

        def failed(exc: BaseException) -> None:
            self.report(exc)
            if on_failure is not None:
                on_failure(exc)

        def cancelled(reason: str) -> None:
            self.notify(f"{name}: {reason}")
            if on_cancel is not None:
                on_cancel(reason)

        def succeeded(result: Any) -> None:
            # The result says what the operation changed: the pages hear it once, after on_success ran.
            if on_success is not None:
                on_success(result)
            self.apply_changes(changes_of(result))

        projects = (self.project,) if self.project is not None else ()
        return self.runner.start(name, fn, projects=projects, on_success=succeeded, on_progress=on_progress,
                                 on_failure=failed, on_cancel=cancelled, on_finish=on_finish)


class Page(QWidget):
    """A page of the main window. Pages that need a project are disabled until one is open."""

    title = ""
    needs_project = True

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        ctx.project_changed.connect(self._project_changed)

    @property
    def project(self) -> Project | None:
        return self.ctx.project

    def _project_changed(self, project: Project | None) -> None:
        if self.needs_project:
            self.setEnabled(project is not None)
        self.on_project_changed(project)

    def on_project_changed(self, project: Project | None) -> None:
        """Reload what the page shows from the newly opened project."""
