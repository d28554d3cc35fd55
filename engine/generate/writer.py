"""The unit loop of a run: plan each code's requests, send them, write each unit's samples atomically."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

from engine.errors import Cancelled
from engine.generate.lease import renew as renew_lease
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.llm.backends import Backend, Completion
from engine.store.project import Project
from engine.generate.runs import (PAUSE_REQUEST, PAUSED, GenerationParams, grammar_for, key_of, make_request,
                                  max_units, parse_output, plan_for_code, prompt_version)
from engine.generate.strategies import make_task, unit_seed

log = logging.getLogger("engine.generate")


class RunWriter:
    """Drives one run to its quota. Counters cover this call only (a resumed run starts them at 0)."""

    def __init__(self, project: Project, run_id: int, row: dict[str, Any], params: GenerationParams,
                 backend: Backend):
        self.project, self.run_id, self.params, self.backend = project, run_id, params, backend
        self.codes: list[str] = json.loads(row["codes"])
        self.strategies: list[str] = json.loads(row["strategies"])
        self.quota: int = row["quota"]
        self.seed: int = row["seed"]
        self.model_sha256: str = row["model_sha256"]
        self.backend_label = f"{backend.name} ({backend.device})"
        self.classification = (project.get_setting("classification", {}) or {}).get("name", "classification")
        constraint = getattr(getattr(backend, "settings", None), "constraint", "grammar")
        self.grammar, self.schema = grammar_for(params, constraint)
        self.sampling = json.dumps(params.sampling())
        self.written = self.units = self.parse_failures = 0
        self.prompt_tokens = self.cached_tokens = self.completion_tokens = 0
        self.seconds = 0.0
        self.lease_token: str | None = None   # set by run_generation: the run's lease, renewed per unit

    # state from the project file --------------------------------------------------------------
    def _done_units(self) -> set[str]:
        return {r[0] for r in self.project.conn.execute(
            "SELECT unit FROM generation_units WHERE run_id = ?", (self.run_id,))}

    def _accepted(self, code: str) -> tuple[dict[str, int], set[str]]:
        counts: dict[str, int] = {}
        keys: set[str] = set()
        for strategy, key in self.project.conn.execute(
                "SELECT strategy, text_key FROM samples WHERE run_id = ? AND code = ?", (self.run_id, code)):
            counts[strategy] = counts.get(strategy, 0) + 1
            keys.add(key)
        return counts, keys

    def _check_stop(self, cancel: CancelToken | None) -> None:
        """Raise Cancelled if this process's token or another process (`cancel_run`) asks the run to stop."""
        if cancel is not None:
            cancel.check()
        row = self.project.conn.execute("SELECT cancel_requested FROM generation_runs WHERE id = ?",
                                        (self.run_id,)).fetchone()
        if row and row[0]:
            raise Cancelled(PAUSED if row[0] == PAUSE_REQUEST else "the run was cancelled")

    # the loop ---------------------------------------------------------------------------------
    def run(self, *, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        total = self.quota * len(self.codes)
        done = self.project.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?",
                                         (self.run_id,)).fetchone()[0]
        meter = ProgressMeter(total, progress, already_done=done)
        start = time.perf_counter()
        finished = self._done_units()
        batch_size = max(1, int(getattr(getattr(self.backend, "settings", None), "parallel", 1) or 1)) \
            if self.backend.name == "openai" else 1
        for code in self.codes:
            counts, keys = self._accepted(code)
            if sum(counts.values()) >= self.quota:
                continue
            card, ctx, plan = plan_for_code(self.project, code, self.strategies, self.quota, self.params, self.seed)
            for position, (strategy, share) in enumerate(plan):
                last = position == len(plan) - 1
                others = sum(n for s, n in counts.items() if s != strategy)
                target = self.quota - others if last else share
                index = 0
                limit = max_units(max(target, 1), self.params)
                while counts.get(strategy, 0) < target and index < limit:
                    self._check_stop(cancel)
                    need = target - counts.get(strategy, 0)
                    wanted = min(batch_size, -(-need // self.params.per_request))
                    batch: list[tuple[str, int, Any]] = []
                    while len(batch) < wanted and index < limit:
                        unit = f"{code}|{strategy}|{index}"
                        if unit not in finished:
                            seed = unit_seed(self.seed, unit)
                            batch.append((unit, seed, make_task(strategy, card, index, seed, ctx)))
                        index += 1
                    if not batch:
                        continue
                    requests = [make_request(card, task, params=self.params, classification=self.classification,
                                             kind=self.backend.prompt_kind, seed=seed, grammar=self.grammar,
                                             schema=self.schema) for _, seed, task in batch]
                    for (unit, seed, task), request, completion in zip(
                            batch, requests, self.backend.generate_many(requests)):
                        room = target - counts.get(strategy, 0)
                        accepted = self._write_unit(code, strategy, unit, seed, task, request, completion, keys, room)
                        finished.add(unit)
                        counts[strategy] = counts.get(strategy, 0) + accepted
                        done += accepted
                        self.seconds = time.perf_counter() - start
                        meter.update(done, f"{code} {strategy}",
                                     samples_per_s=self.written / self.seconds if self.seconds else 0.0,
                                     tokens_per_s=self.completion_tokens / self.seconds if self.seconds else 0.0)
                        # Stop after the request that was running when Pause was pressed (its samples
                        # are kept), even if it was the run's last: the user asked for a pause.
                        if cancel is not None:
                            cancel.check()
            if sum(counts.values()) < self.quota:
                log.warning("run %s: code %s ended %d short of its quota of %d", self.run_id, code,
                            self.quota - sum(counts.values()), self.quota)
        self.seconds = time.perf_counter() - start
        meter.update(done, "finished", force=True,
                     samples_per_s=self.written / self.seconds if self.seconds else 0.0,
                     tokens_per_s=self.completion_tokens / self.seconds if self.seconds else 0.0)

    def _write_unit(self, code: str, strategy: str, unit: str, seed: int, task, request,
                    completion: Completion, keys: set[str], room: int) -> int:
        parsed = parse_output(completion.text, self.params)
        fresh: list[tuple[str, str]] = []
        for phrase in parsed.phrases:
            key = key_of(phrase)
            if key not in keys and len(fresh) < max(room, 0):
                fresh.append((phrase, key))
        if not parsed.ok:
            self.parse_failures += 1
            log.warning("run %s unit %s: output did not parse (%s); %d phrases salvaged",
                        self.run_id, unit, parsed.error, len(parsed.phrases))
        version = prompt_version(strategy)
        prompt_hash = request.prompt.hash()
        condition = json.dumps(task.condition, ensure_ascii=False)
        rows = [(self.run_id, code, phrase, key, strategy, unit, version, prompt_hash, condition, seed,
                 self.model_sha256, self.backend_label, self.sampling, completion.prompt_tokens,
                 completion.completion_tokens, completion.logprob) for phrase, key in fresh]
        try:
            with self.project.transaction() as conn:
                if self.lease_token is not None:
                    renew_lease(conn, self.run_id, self.lease_token)   # stops a runner whose lease was taken
                conn.execute(
                    "INSERT INTO generation_units (run_id, unit, code, strategy, accepted, parsed, parse_ok,"
                    " prompt_tokens, cached_tokens, completion_tokens, seconds, raw_output)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.run_id, unit, code, strategy, len(rows), len(parsed.phrases), int(parsed.ok),
                     completion.prompt_tokens, completion.cached_tokens, completion.completion_tokens,
                     completion.prompt_s + completion.decode_s, None if parsed.ok else completion.text))
                conn.executemany(
                    "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash,"
                    " condition, seed, model_sha256, backend, params, prompt_tokens, completion_tokens, logprob)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            # Another process finished this unit first (two runners on one run): keep theirs.
            log.warning("run %s unit %s was already written by another process", self.run_id, unit)
            return 0
        keys.update(key for _, key in fresh)
        self.units += 1
        self.written += len(rows)
        self.prompt_tokens += completion.prompt_tokens
        self.cached_tokens += completion.cached_tokens
        self.completion_tokens += completion.completion_tokens
        return len(rows)
