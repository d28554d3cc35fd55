"""The unit loop of a run: plan each code's requests, keep the backend's slots full, write each unit atomically.

The backend pulls the next unit whenever it has a free sequence slot (`Backend.stream`); what the
writer hands out depends on what has been accepted and what is still in flight, so with `parallel`
sequences at once a code still ends with exactly its quota: a strategy is asked for more only while
its accepted samples plus what its units in flight may bring fall short, and at write time no unit
adds more than its strategy's and its code's remaining room.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Cancelled
from engine.generate.lease import renew as renew_lease
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.llm.backends import Backend, Completion, stream_in_rounds
from engine.llm.base import span_logprob
from engine.store.project import Project
from engine.generate.runs import (PAUSE_REQUEST, PAUSED, GenerationParams, grammar_for, key_of, make_request,
                                  phrase_words,
                                  max_units, parse_output, plan_for_code, prompt_version)
from engine.generate.strategies import StrategyContext, make_task, unit_seed

log = logging.getLogger("engine.generate")


@dataclass
class _CodeState:
    """One code's plan and where it stands: accepted samples, next unit index, units in flight."""

    code: str
    card: Any
    ctx: StrategyContext
    plan: list[tuple[str, int]]
    counts: dict[str, int]
    keys: set[str]
    words: Counter = field(default_factory=Counter)     # accepted samples per word (diversity control)
    index: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    position: int = 0           # the first strategy of the plan that may still need units

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def busy(self) -> int:
        return sum(self.in_flight.values())


@dataclass(frozen=True)
class _Unit:
    code: str
    strategy: str
    unit: str
    seed: int
    task: Any
    request: Any


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
        # Samples stored with the request's logprob because their phrase was not found in the reply text.
        self.logprob_fallbacks = 0
        self.prompt_tokens = self.cached_tokens = self.completion_tokens = 0
        self.seconds = 0.0
        self.lease_token: str | None = None   # set by run_generation: the run's lease, renewed per unit
        self.parallel = _parallel(backend)
        self._states: dict[str, _CodeState] = {}
        self._closed: set[str] = set()
        self._first_open = 0
        self._finished: set[str] = set()

    # state from the project file --------------------------------------------------------------
    def _done_units(self) -> set[str]:
        return {r[0] for r in self.project.conn.execute(
            "SELECT unit FROM generation_units WHERE run_id = ?", (self.run_id,))}

    def _accepted(self, code: str) -> tuple[dict[str, int], set[str], Counter]:
        counts: dict[str, int] = {}
        keys: set[str] = set()
        words: Counter = Counter()
        for strategy, key, text in self.project.conn.execute(
                "SELECT strategy, text_key, text FROM samples WHERE run_id = ? AND code = ?", (self.run_id, code)):
            counts[strategy] = counts.get(strategy, 0) + 1
            keys.add(key)
            words.update(phrase_words(text))
        return counts, keys, words

    def _check_stop(self, cancel: CancelToken | None) -> None:
        """Raise Cancelled if this process's token or another process (`cancel_run`) asks the run to stop."""
        if cancel is not None:
            cancel.check()
        row = self.project.conn.execute("SELECT cancel_requested FROM generation_runs WHERE id = ?",
                                        (self.run_id,)).fetchone()
        if row and row[0]:
            raise Cancelled(PAUSED if row[0] == PAUSE_REQUEST else "the run was cancelled")

    # which unit next ----------------------------------------------------------------------------
    def _state(self, code: str) -> _CodeState:
        state = self._states.get(code)
        if state is None:
            counts, keys, words = self._accepted(code)
            card, ctx, plan = plan_for_code(self.project, code, self.strategies, self.quota, self.params, self.seed)
            state = self._states[code] = _CodeState(code, card, ctx, plan, counts, keys, words)
        return state

    def _target(self, state: _CodeState, position: int, *, projected: bool) -> int:
        """A strategy's share; the last strategy of the plan takes whatever the others leave of the quota.
        `projected`: count the others' units in flight as if each brought a full request of phrases."""
        strategy, share = state.plan[position]
        if position < len(state.plan) - 1:
            return share
        others = 0
        for other, other_share in state.plan[:-1]:
            done = state.counts.get(other, 0)
            if projected:
                done = max(done, min(other_share, done + state.in_flight.get(other, 0) * self.params.per_request))
            others += done
        others += sum(n for s, n in state.counts.items() if s not in dict(state.plan))
        return self.quota - others

    def _next_of(self, state: _CodeState) -> _Unit | None:
        if state.total >= self.quota:
            return None
        for position in range(state.position, len(state.plan)):
            strategy = state.plan[position][0]
            target = self._target(state, position, projected=True)
            limit = max_units(max(target, 1), self.params)
            accepted = state.counts.get(strategy, 0)
            flying = state.in_flight.get(strategy, 0)
            if accepted >= target or state.index.get(strategy, 0) >= limit:
                if not flying and position == state.position:
                    state.position += 1   # this strategy is finished for good
                continue
            if accepted + flying * self.params.per_request >= target:
                continue                  # enough in flight; the next strategy meanwhile
            while state.index.get(strategy, 0) < limit:
                index = state.index.get(strategy, 0)
                state.index[strategy] = index + 1
                unit = f"{state.code}|{strategy}|{index}"
                if unit in self._finished:
                    continue
                seed = unit_seed(self.seed, unit)
                task = make_task(strategy, state.card, index, seed, state.ctx)
                request = make_request(state.card, task, params=self.params, classification=self.classification,
                                       kind=self.backend.prompt_kind, seed=seed, grammar=self.grammar,
                                       schema=self.schema, suppress=self.params.overused(state.words))
                state.in_flight[strategy] = flying + 1
                return _Unit(state.code, strategy, unit, seed, task, request)
        return None

    def _next_unit(self) -> tuple[_Unit, Any] | None:
        """The next unit to send: from the first code that still needs one, in the run's code order.
        A code is left for the next only when everything it needs is in flight, so its card stays in
        the KV cache for all its requests."""
        position = self._first_open
        while position < len(self.codes):
            code = self.codes[position]
            position += 1
            if code in self._closed:
                continue
            state = self._state(code)
            unit = self._next_of(state)
            if unit is not None:
                return unit, unit.request
            if not state.busy:
                self._close(state)
        return None

    def _close(self, state: _CodeState) -> None:
        self._closed.add(state.code)
        self._states.pop(state.code, None)
        while self._first_open < len(self.codes) and self.codes[self._first_open] in self._closed:
            self._first_open += 1
        if state.total < self.quota:
            log.warning("run %s: code %s ended %d short of its quota of %d", self.run_id, state.code,
                        self.quota - state.total, self.quota)

    # the loop ---------------------------------------------------------------------------------
    def run(self, *, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        total = self.quota * len(self.codes)
        done = self.project.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?",
                                         (self.run_id,)).fetchone()[0]
        meter = ProgressMeter(total, progress, already_done=done)
        start = time.perf_counter()
        self._finished = self._done_units()

        def should_stop() -> bool:
            self._check_stop(cancel)   # raises Cancelled (or the paused kind of it)
            return False

        def source() -> tuple[_Unit, Any] | None:
            return self._next_unit()

        stream = getattr(self.backend, "stream", None)
        if stream is not None:
            completions = stream(source, should_stop=should_stop)
        else:
            completions = stream_in_rounds(self.backend.generate_many, source, size=self.parallel,
                                           should_stop=should_stop)
        try:
            for unit, completion in completions:
                state = self._states[unit.code]
                state.in_flight[unit.strategy] -= 1
                accepted = self._write_unit(unit.code, unit.strategy, unit.unit, unit.seed, unit.task, unit.request,
                                            completion, state.keys, self._room(state, unit.strategy))
                self._finished.add(unit.unit)
                state.counts[unit.strategy] = state.counts.get(unit.strategy, 0) + accepted
                done += accepted
                self.seconds = time.perf_counter() - start
                meter.update(done, f"{unit.code} {unit.strategy}", **self.rates())
                # Stop after the request that was running when Pause was pressed (its samples are kept),
                # even if it was the run's last: the user asked for a pause.
                if cancel is not None:
                    cancel.check()
        finally:
            # An exception (cancel, a lost lease) leaves the stream suspended: close it now, so it frees
            # its sequences and the backend's lock at once, not whenever it is garbage-collected.
            close = getattr(completions, "close", None)
            if close is not None:
                close()
        for state in list(self._states.values()):
            self._close(state)
        self.seconds = time.perf_counter() - start
        meter.update(done, "finished", force=True, **self.rates())

    def _room(self, state: _CodeState, strategy: str) -> int:
        # Projected, as in _next_of: the last strategy must leave room for the other strategies' units
        # still in flight, or with many in flight it fills their shares before they return.
        position = [s for s, _ in state.plan].index(strategy)
        target = self._target(state, position, projected=True)
        return max(0, min(target - state.counts.get(strategy, 0), self.quota - state.total))

    def rates(self) -> dict[str, float]:
        """samples/s, completion tokens/s and evaluated tokens/s of this call so far, and `parallel`."""
        seconds = self.seconds or 0.0
        evaluated = self.prompt_tokens - self.cached_tokens + self.completion_tokens
        return {"samples_per_s": self.written / seconds if seconds else 0.0,
                "tokens_per_s": self.completion_tokens / seconds if seconds else 0.0,
                "evaluated_tokens_per_s": evaluated / seconds if seconds else 0.0,
                "parallel": float(self.parallel)}

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
        condition = json.dumps({**task.condition, **({"suppressed": [w for w, _ in request.suppress]}
                                                      if request.suppress else {})}, ensure_ascii=False)
        scores = phrase_logprobs(completion, parsed.phrases)
        kept = {phrase for phrase, _ in fresh}
        fallbacks = sum(1 for phrase in kept if scores[phrase][1] is None and completion.token_logprobs)
        if fallbacks:
            log.info("run %s unit %s: %d phrases not found in the reply; stored with the request's logprob",
                     self.run_id, unit, fallbacks)
        rows = [(self.run_id, code, phrase, key, strategy, unit, version, prompt_hash, condition, seed,
                 self.model_sha256, self.backend_label, self.sampling, completion.prompt_tokens,
                 completion.completion_tokens, *scores[phrase]) for phrase, key in fresh]
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
                    " condition, seed, model_sha256, backend, params, prompt_tokens, completion_tokens, logprob,"
                    " logprob_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            # Another process finished this unit first (two runners on one run): keep theirs.
            log.warning("run %s unit %s was already written by another process", self.run_id, unit)
            return 0
        keys.update(key for _, key in fresh)
        state = self._states.get(code)
        if state is not None:
            for phrase, _ in fresh:
                state.words.update(phrase_words(phrase))
        self.units += 1
        self.written += len(rows)
        self.logprob_fallbacks += fallbacks
        self.prompt_tokens += completion.prompt_tokens
        self.cached_tokens += completion.cached_tokens
        self.completion_tokens += completion.completion_tokens
        return len(rows)


def phrase_spans(text: str, phrases: list[str]) -> list[tuple[int, int] | None]:
    """Per phrase, its byte span `[start, end)` in `text`'s UTF-8 bytes, or None where it is not there.

    Searched in order, each from the end of the previous phrase found: first as a whole JSON string
    (`"phrase"`, so a phrase is not found inside a longer one the parser dropped), then bare. A phrase
    the parser changed (spaces tidied, a leading dash stripped) may be found bare; one it rewrote is not.
    """
    spans: list[tuple[int, int] | None] = []
    at = 0
    for phrase in phrases:
        quoted = text.find(f'"{phrase}"', at)
        start = quoted + 1 if quoted >= 0 else text.find(phrase, at) if phrase else -1
        if start < 0:
            spans.append(None)
            continue
        stop = start + len(phrase)
        begin = len(text[:start].encode("utf-8"))
        spans.append((begin, begin + len(phrase.encode("utf-8"))))
        at = stop
    return spans


def phrase_logprobs(completion: Completion, phrases: list[str]) -> dict[str, tuple[float | None, int | None]]:
    """Per phrase: (logprob, tokens) summed over the completion tokens that overlap the phrase's bytes
    in the reply (SuperGen per phrase), or (the request's logprob, None) where the backend gave no
    per-token log-probabilities or the phrase was not found in the reply: such a row is scored per
    request, logprob / completion_tokens, like the rows written before phrases were scored."""
    out: dict[str, tuple[float | None, int | None]] = {}
    spans = phrase_spans(completion.text, phrases) if completion.token_logprobs else [None] * len(phrases)
    for phrase, span in zip(phrases, spans):
        if span is None:
            out[phrase] = (completion.logprob, None)
            continue
        logprob, tokens = span_logprob(completion.token_logprobs, *span)
        out[phrase] = (logprob, tokens) if tokens else (completion.logprob, None)
    return out


def _parallel(backend: Backend) -> int:
    """How many requests the backend works on at once: its in-process `parallel`, else the server's."""
    parallel = getattr(backend, "parallel", None)
    if parallel is None:
        settings = getattr(backend, "settings", None)
        parallel = getattr(settings, "parallel", 1) if backend.name == "openai" else 1
    return max(1, int(parallel or 1))
