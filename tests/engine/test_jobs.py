"""The progress meter: ETA from the work done in this start, also when a run resumes half-way."""

from __future__ import annotations

from engine.jobs import ProgressMeter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_eta_extrapolates_the_rate_of_this_start():
    clock, seen = Clock(), []
    meter = ProgressMeter(100, seen.append, min_interval_s=0, clock=clock)
    clock.now = 10.0
    meter.update(20)
    assert seen[-1].eta_s == 40.0 and seen[-1].done == 20


def test_a_resumed_run_does_not_count_earlier_work_as_fast_progress():
    """772 of 1204 were done before the restart; 4 more in 12 s means about 21 minutes left, not seconds."""
    clock, seen = Clock(), []
    meter = ProgressMeter(1204, seen.append, min_interval_s=0, clock=clock, already_done=772)
    meter.update(772)
    assert seen[-1].eta_s is None
    clock.now = 12.0
    meter.update(776)
    assert seen[-1].eta_s == 3 * (1204 - 776)
