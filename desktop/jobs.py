"""Run engine calls on worker threads, with throttled progress signals and a cancel token per job."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import Cancelled
from engine.jobs import CancelToken, ProgressInfo

# What a job runs: an engine call that takes progress= and cancel= keyword arguments.
JobFunction = Callable[..., Any]

PROGRESS_INTERVAL_S = 0.05
# While a job runs, a CPU-bound worker holds the GIL and the GUI thread gets it back only when the
# worker is asked to drop it, after the switch interval (5 ms by default). The GUI thread takes the
# GIL many times per event-loop pass (once per Python slot), so the waits add up to visible stalls;
# 1 ms keeps them short at a negligible cost in switching.
JOB_SWITCH_INTERVAL_S = 0.001


class JobSignals(QObject):
    """Created on the GUI thread, so signals emitted from the worker are queued to the GUI thread."""

    progress = Signal(object)    # ProgressInfo
    succeeded = Signal(object)   # the engine call's result
    failed = Signal(object)      # the exception (never a Cancelled)
    cancelled = Signal(str)      # the reason
    finished = Signal()          # always last, whatever the outcome


class Job(QRunnable):
    """One engine call on a pool thread. Never touches widgets: it only emits signals."""

    def __init__(self, name: str, fn: JobFunction, *, projects: tuple = (),
                 progress_interval_s: float = PROGRESS_INTERVAL_S) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self.fn = fn
        self.projects = projects
        self.cancel_token = CancelToken()
        self.signals = JobSignals()
        self.progress_interval_s = progress_interval_s
        self.last_progress: ProgressInfo | None = None
        self.done = False
        self.native_id: int | None = None  # the OS thread running it, for diagnostics
        self._last_emit = 0.0
        self._last_percent = -1

    def cancel(self, reason: str | None = None) -> None:
        self.cancel_token.cancel(reason)

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled

    def _progress(self, info: ProgressInfo) -> None:
        # Throttled here, on the worker: a flood of queued signals would stall the event loop.
        now = time.monotonic()
        percent = int(info.fraction * 100)
        final = info.total and info.done >= info.total
        if not final and (now - self._last_emit < self.progress_interval_s or
                          (percent == self._last_percent and now - self._last_emit < 0.5)):
            return
        self._last_emit = now
        self._last_percent = percent
        self.last_progress = info
        self.signals.progress.emit(info)

    def run(self) -> None:
        self.native_id = threading.get_native_id()
        try:
            result = self.fn(progress=self._progress, cancel=self.cancel_token)
        except Cancelled as exc:
            self.signals.cancelled.emit(str(exc))
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the GUI, none is lost
            if self.cancel_token.cancelled:
                self.signals.cancelled.emit(self.cancel_token.reason)
            else:
                self.signals.failed.emit(exc)
        else:
            self.signals.succeeded.emit(result)
        finally:
            # Pool threads are reused: close this thread's sqlite connections so none leaks.
            for project in self.projects:
                project.close()
            self.done = True
            self.signals.finished.emit()


class JobRunner(QObject):
    """Starts jobs on a thread pool and knows which are still running (for the close-window question)."""

    busy_changed = Signal(bool)
    job_started = Signal(object)
    job_finished = Signal(object)

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.active: list[Job] = []
        self._idle_switch_interval = sys.getswitchinterval()

    def start(self, name: str, fn: JobFunction, *, projects: tuple = (),
              on_success: Callable[[Any], None] | None = None,
              on_progress: Callable[[ProgressInfo], None] | None = None,
              on_failure: Callable[[BaseException], None] | None = None,
              on_cancel: Callable[[str], None] | None = None,
              on_finish: Callable[[], None] | None = None) -> Job:
        job = Job(name, fn, projects=projects)
        for signal, slot in ((job.signals.progress, on_progress), (job.signals.succeeded, on_success),
                             (job.signals.failed, on_failure), (job.signals.cancelled, on_cancel),
                             (job.signals.finished, on_finish)):
            if slot is not None:
                signal.connect(slot)
        job.signals.finished.connect(lambda: self._finished(job))
        was_busy = bool(self.active)
        self.active.append(job)
        self.job_started.emit(job)
        if not was_busy:
            self._idle_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._idle_switch_interval, JOB_SWITCH_INTERVAL_S))
            self.busy_changed.emit(True)
        self.pool.start(job)
        return job

    def _finished(self, job: Job) -> None:
        if job in self.active:
            self.active.remove(job)
        self.job_finished.emit(job)
        if not self.active:
            sys.setswitchinterval(self._idle_switch_interval)
            self.busy_changed.emit(False)

    @property
    def busy(self) -> bool:
        return bool(self.active)

    def cancel_all(self, reason: str = "cancelled because the window was closed") -> None:
        for job in list(self.active):
            job.cancel(reason)

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until every job's thread is done (used only when quitting)."""
        return self.pool.waitForDone(timeout_ms)
