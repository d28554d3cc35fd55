"""Run (or resume) a generation run: take the run's lease, open the backend, let the writer fill the quota.

Separate from runs.py (definitions, plans, requests) so that the writer, which needs those, and this,
which needs the writer, import no cycle.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, ModelError, StatcoderError, with_hint
import engine.generate.lease as lease
from engine.generate.lease import LeaseLostError
from engine.generate.runs import (PAUSED, GenerationParams, RunResult, _run_row, _set_status, is_pause, run_settings,
                                  run_status)
from engine.generate.writer import RunWriter
from engine.jobs import CancelToken, ProgressCallback
from engine.llm.backends import Backend, BackendSettings, open_backend
from engine.llm.registry import list_models
from engine.store.project import Project


def run_generation(project: Project, run_id: int, *, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None, backend: Backend | None = None,
                   parallel: int | None = None) -> RunResult:
    """Run (or resume) a run until every code has its quota. Returns what this call did.

    Progress reports done/total accepted samples with rates `samples_per_s`, `tokens_per_s`,
    `evaluated_tokens_per_s` (prompt tokens not reused plus completion tokens), `parallel` (requests the
    backend works on at once) and an ETA. Cancelling (the token, or `cancel_run` from elsewhere) stops
    within one decoding step (requests in flight are dropped and redone on resume), marks the run
    'cancelled' (or 'paused' when the token's reason is PAUSED) and raises Cancelled; calling this
    again resumes. Pass an open `backend` to reuse a loaded model across runs; it must be the run's model.
    `parallel` overrides the run's in-process `HardwareSettings.parallel` for this call (the samples'
    provenance does not change).
    """

    row = _run_row(project, run_id)
    settings, params = run_settings(project, run_id)
    if parallel is not None:
        if parallel < 1:
            raise StatcoderError("parallel must be at least 1")
        settings = replace(settings, hardware=replace(settings.hardware, parallel=parallel))
    if settings.kind == "llama-cpp" and backend is None:
        settings = _locate_model(settings, row["model_sha256"] or "", run_id)
    token = lease.acquire(project, run_id)   # refuses while another live runner holds the run
    try:
        return _run_leased(project, run_id, row, settings, params, token, progress=progress, cancel=cancel,
                           backend=backend)
    finally:
        lease.release(project, run_id, token)


def _locate_model(settings: BackendSettings, sha256: str, run_id: int) -> BackendSettings:
    """The run's settings with a model file that exists: the stored path, or else the registered model
    with the run's sha256 (a project moved to another workstation, or a model file moved since)."""
    if settings.model_path and Path(settings.model_path).is_file():
        return settings
    for model in list_models():
        if model.sha256 == sha256 and Path(model.path).is_file():
            return replace(settings, model_path=model.path)
    raise with_hint(ModelError(
        f"run {run_id} was made with model sha256 {sha256[:12]}..., whose file {settings.model_path} is gone, "
        f"and no registered model has that sha256; add that model file (statcoder models add FILE) and resume"),
        "add_llm")


def _run_leased(project: Project, run_id: int, row: dict[str, Any], settings: BackendSettings,
                params: GenerationParams, token: str, *, progress: ProgressCallback | None,
                cancel: CancelToken | None, backend: Backend | None) -> RunResult:

    project.conn.execute("UPDATE generation_runs SET cancel_requested = 0 WHERE id = ?", (run_id,))
    owned = backend is None
    try:
        backend = backend or open_backend(settings)
    except StatcoderError as exc:
        _set_status(project, run_id, "failed", error=str(exc))
        raise
    try:
        if settings.kind == "llama-cpp" and backend.model_sha256 != row["model_sha256"]:
            raise ModelError(f"run {run_id} was made with model {row['model_sha256'][:12]}..., but the backend "
                             f"has {backend.model_sha256[:12]}...; resume it with the same model file")
        _set_status(project, run_id, "running", device=backend.device)
        writer = RunWriter(project, run_id, row, params, backend)
        writer.lease_token = token
        # A backend that can stop mid-request (llama.cpp in this process) asks the token at every token,
        # so a pause takes effect within one request instead of after it.
        interruptible = cancel is not None and hasattr(backend, "interrupt")
        if interruptible:
            backend.interrupt = cancel.check
        try:
            writer.run(progress=progress, cancel=cancel)
        except LeaseLostError:
            raise   # the run is another runner's now: its status is theirs to set
        except Cancelled as exc:
            _set_status(project, run_id, PAUSED if is_pause(exc) else "cancelled")
            raise
        except Exception as exc:
            _set_status(project, run_id, "failed", error=str(exc))
            raise
        finally:
            if interruptible:
                backend.interrupt = None
        status = run_status(project, run_id)
        _set_status(project, run_id, "done",
                    error=(f"short of the quota for {len(status.shortfall)} codes" if status.shortfall else None))
        return RunResult(run_id=run_id, status="done", samples=status.done, written=writer.written,
                         units=writer.units, parse_failures=writer.parse_failures, prompt_tokens=writer.prompt_tokens,
                         cached_tokens=writer.cached_tokens, completion_tokens=writer.completion_tokens,
                         seconds=writer.seconds, device=backend.device, shortfall=status.shortfall,
                         parallel=writer.parallel, logprob_fallbacks=writer.logprob_fallbacks)
    finally:
        if owned:
            backend.close()


resume = run_generation
"""Resuming is running again: finished units are skipped, the rest continue in the same order."""
