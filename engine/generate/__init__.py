"""Generate labelled training texts per code with a local LLM: strategies, prompts and resumable runs.

    run_id = create_run(project, codes=["10.71"], quota=24, seed=1, strategies=["notes", "grid"])
    result = run_generation(project, run_id, progress=print, cancel=token)
    run_status(project, run_id).done
"""

from engine.generate.prompts import DEFAULT_GRID
from engine.generate.runs import (PAUSED, GenerationParams, RunResult, RunStatus, cancel_run, create_run, is_pause,
                                  list_runs, run_settings, run_status)
from engine.generate.execute import resume, run_generation
from engine.generate.strategies import DEFAULT_STRATEGIES, STRATEGIES

__all__ = [
    "DEFAULT_GRID", "DEFAULT_STRATEGIES", "PAUSED", "GenerationParams", "RunResult", "RunStatus", "STRATEGIES",
    "cancel_run", "create_run", "is_pause", "list_runs", "resume", "run_generation", "run_settings", "run_status",
]
