"""Progress reporting and cancellation for long engine jobs (the GUI and CLI both drive these)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from engine.errors import Cancelled


@dataclass(frozen=True)
class ProgressInfo:
    """One progress report. `rates` carries job-specific figures such as samples/s or tokens/s."""

    done: int
    total: int
    message: str = ""
    eta_s: float | None = None
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class ProgressCallback(Protocol):
    def __call__(self, info: ProgressInfo) -> None: ...


def no_progress(info: ProgressInfo) -> None:
    """The default callback: report nothing."""


class CancelToken:
    """Set from any thread (the GUI's Cancel button); the job checks it between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled by the user"

    def cancel(self, reason: str | None = None) -> None:
        if reason:
            self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason)


class ProgressMeter:
    """Turns done/total counts into ProgressInfo with an ETA, and throttles reports."""

    def __init__(self, total: int, callback: ProgressCallback | None, *, min_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, already_done: int = 0):
        self.total = total
        # Work finished before this start (a resumed run): it counts towards done, not towards the rate.
        self.already_done = already_done
        self.callback = callback or no_progress
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.start = clock()
        self._last = -1.0

    def update(self, done: int, message: str = "", *, force: bool = False, **rates: float) -> None:
        now = self.clock()
        if not force and done < self.total and now - self._last < self.min_interval_s:
            return
        self._last = now
        elapsed = now - self.start
        fresh = done - self.already_done
        eta = (elapsed / fresh) * (self.total - done) if fresh > 0 and self.total else None
        self.callback(ProgressInfo(done, self.total, message, eta, dict(rates)))


def scaled_progress(progress: ProgressCallback | None, start: float, end: float,
                    message: str = "") -> ProgressCallback | None:
    """Map a sub-job's progress onto [start, end] of one bar, in thousandths (Orange3's wrap_callback).

    The sub-job's ETA is dropped: it covers only its own part of the bar.
    """
    if progress is None:
        return None

    def report(info: ProgressInfo) -> None:
        inner = info.fraction if info.total else 0.0
        done = int(1000 * (start + (end - start) * inner))
        progress(ProgressInfo(done, 1000, info.message or message, None, dict(info.rates)))

    return report
