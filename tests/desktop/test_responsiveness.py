"""The event-loop gap meter used by the stall tests (the generation test in test_generation_pages.py)."""

from __future__ import annotations

import time

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
    that thread is the GUI thread, or the job's thread while it holds the GIL, the event loop stalls
    through no fault of the app. Runqueue time of those two threads (from /proc/.../schedstat) is
    therefore not counted; slow code on the GUI thread, a long call holding the GIL or a garbage
    collection is not runqueue time, so every stall the app causes still counts. On an idle machine
    the two measures are the same.
    """

    def __init__(self, runner=None):
        self.runner = runner
        self.timer = QTimer(interval=10, timeout=self.tick)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.last = None
        self.last_wait = 0.0
        self.gaps: list[float] = []
        self.waits: list[float] = []

    def _os_wait(self) -> float:
        waits = {"gui": runqueue_wait_ms()}
        for job in (self.runner.active if self.runner else []):
            if job.native_id:
                waits[job.native_id] = runqueue_wait_ms(job.native_id)
        return waits

    def start(self):
        self.last = time.perf_counter()
        self.last_wait = self._os_wait()
        self.timer.start()

    def tick(self):
        now, wait = time.perf_counter(), self._os_wait()
        self.gaps.append((now - self.last) * 1000)
        self.waits.append(sum(wait[k] - self.last_wait.get(k, wait[k]) for k in wait))
        self.last, self.last_wait = now, wait

    def stop(self):
        self.timer.stop()

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
        return f"{len(self.gaps)} ticks, longest raw gap {self.longest_raw:.0f} ms; long gaps: " + ", ".join(out)
