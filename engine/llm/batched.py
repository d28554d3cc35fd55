"""Many requests in one llama.cpp batch: up to `parallel` sequences decoded together, sharing a prompt prefix.

Each decoding step sends one `llama_batch` holding, for every active sequence, either its next
sampled token or a slice of its prompt's task text, so the model's weights are read once per step
for all of them. The shared prompt prefix (system text, then the code's card) lives in a prefix
sequence of its own (ids `parallel` .. `parallel + PREFIX_SLOTS - 1`, the least recently used one
replaced): it is evaluated once per code, in its own stage batches, and copied to a request's
sequence with `llama_memory_seq_cp`, which in a unified KV cache only tags the same cells with one
more sequence id (no copy of the data, no re-evaluation). Several prefixes are kept because a run
fills free slots from the next code while the last requests of the previous one are still in flight,
and goes back to a code when its requests fall short; a new code's card reuses the system text's
cells of any cached prefix. Every sequence has its own
seeded sampler and grammar (`ConstrainedSampler`); a finished sequence frees its slot at once and
the next request takes it.

What a seed guarantees here: the same requests pulled in the same order, with the same `parallel`,
model file, llama.cpp build, thread count and machine, give the same texts. A request's text also
depends on which other requests share its batches (llama.cpp's CPU kernels round differently for
different batch shapes), so the same seed alone does not give the text of the one-at-a-time path,
nor of a run resumed after a crash (whose batches hold other requests); every text is still a
valid, grammar-constrained answer to its own prompt.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from engine.errors import Cancelled, ModelError
from engine.llm.base import Completion, GenerationRequest, Prompt, RequestSource
from engine.llm.sampling import ConstrainedSampler, completion_bytes, suppression_bias


# Prefix sequences kept in the KV cache (code cards in use or likely to be used again).
PREFIX_SLOTS = 4


@dataclass
class _Prefix:
    """One cached prompt prefix: its sequence id, its tokens, and a counter bumped when it is replaced."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    generation: int = 0
    used: int = 0


@dataclass
class _Slot:
    """One sequence in flight: its request, what is left of its prompt to feed, and what it produced."""

    seq: int
    key: Any
    request: GenerationRequest
    tokens: list[int]
    pending: list[int]
    pos: int
    shared: int
    cached: int
    prefix: _Prefix
    prefix_generation: int
    sampler: ConstrainedSampler
    out: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)     # per token of `out`, from the raw logits
    prompt_s: float = 0.0
    decode_s: float = 0.0
    finish: str = "length"

    @property
    def generating(self) -> bool:
        return not self.pending or bool(self.out)


class BatchedDecoder:
    """Drives a llama.cpp context created with `n_seq_max = parallel + PREFIX_SLOTS` and a unified KV cache.

    `tokens_for(prompt)` and `stages(prompt, tokens)` come from the backend (chat template, the
    token counts of the system and card stages). Not thread-safe: the backend holds its lock.
    """

    def __init__(self, llama_cpp, llm, *, vocab, parallel: int, n_batch: int, n_ctx_per_request: int,
                 logprobs: bool, tokens_for: Callable[[Prompt], list[int]],
                 stages: Callable[[Prompt, list[int]], tuple[int, int]]):
        self._c = llama_cpp
        self.llm = llm
        self.ctx = llm._ctx.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = vocab
        self.n_vocab = llm.n_vocab()
        self.parallel = parallel
        self._prefixes = [_Prefix(parallel + i) for i in range(PREFIX_SLOTS)]
        self._clock = 0
        self.n_batch = max(n_batch, parallel)
        self.n_ctx_per_request = n_ctx_per_request
        self.kv_cells = int(llama_cpp.llama_n_ctx(self.ctx))
        self.logprobs = logprobs
        self.tokens_for, self.stages = tokens_for, stages
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        # counters since the backend was opened, for benches and progress displays
        self.steps = 0
        self.evaluated_tokens = 0

    # the KV cache -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything in the KV cache, the shared prefix included."""
        self._c.llama_memory_clear(self.memory, True)
        for prefix in self._prefixes:
            prefix.tokens = []
            prefix.generation += 1

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) items."""
        b = self._batch
        b.n_tokens = len(items)
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        rc = self._c.llama_decode(self.ctx, b)
        if rc != 0:
            raise ModelError(f"llama.cpp could not decode a batch of {len(items)} tokens (code {rc}): the KV cache "
                             f"of {self.kv_cells} cells is full; raise the context size or lower `parallel`")
        self.steps += 1
        self.evaluated_tokens += len(items)

    def _eval_prefix(self, tokens: list[int], start: int, end: int, seq: int) -> None:
        for chunk in range(start, end, self.n_batch):
            stop = min(chunk + self.n_batch, end)
            self._decode([(tokens[p], p, seq, False) for p in range(chunk, stop)])

    def _ensure_prefix(self, tokens: list[int], system: int, shared: int) -> tuple[_Prefix, int]:
        """A prefix sequence holding `tokens[:shared]`, and how many of those tokens were already in the
        cache (not evaluated now).

        The system text and the card are each evaluated as their own batch, never beside other
        sequences' tokens, so a prefix holds the same numbers whatever else is in flight.
        """
        self._clock += 1
        want = tokens[:shared]
        for prefix in self._prefixes:
            if len(prefix.tokens) >= shared and prefix.tokens[:shared] == want:
                if len(prefix.tokens) > shared:
                    self._c.llama_memory_seq_rm(self.memory, prefix.seq, shared, -1)
                    prefix.tokens = prefix.tokens[:shared]
                prefix.used = self._clock
                return prefix, shared
        target = min(self._prefixes, key=lambda p: (bool(p.tokens), p.used))
        source = next((p for p in self._prefixes if system and len(p.tokens) >= system
                       and p.tokens[:system] == tokens[:system]), None)
        target.generation += 1
        if source is target:
            self._c.llama_memory_seq_rm(self.memory, target.seq, system, -1)
        else:
            self._c.llama_memory_seq_rm(self.memory, target.seq, -1, -1)
            if source is not None:
                self._c.llama_memory_seq_cp(self.memory, source.seq, target.seq, 0, system)
            elif system:
                self._eval_prefix(tokens, 0, system, target.seq)
        self._eval_prefix(tokens, system, shared, target.seq)
        target.tokens = list(want)
        target.used = self._clock
        return target, (system if source is not None else 0)

    # requests -----------------------------------------------------------------------------------
    def _grammar(self, request: GenerationRequest) -> str | None:
        if request.grammar is None and request.json_schema is not None:
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            return json_schema_to_gbnf(json.dumps(request.json_schema))
        return request.grammar

    def _tokens(self, request: GenerationRequest) -> list[int]:
        tokens = self.tokens_for(request.prompt)
        if len(tokens) + request.max_tokens > self.n_ctx_per_request:
            raise ModelError(f"the prompt ({len(tokens)} tokens) plus {request.max_tokens} new tokens exceed "
                             f"the context size {self.n_ctx_per_request}; raise the context size in the settings")
        return tokens

    def _reserved(self, slots: dict[int, _Slot]) -> int:
        """Cells the active sequences may still need (conservative: a sequence admitted under an older
        prefix counts its whole prompt, because the cells of that prefix are not shared any more)."""
        total = sum(len(prefix.tokens) for prefix in self._prefixes)
        for slot in slots.values():
            own = len(slot.tokens) - (slot.shared if slot.prefix_generation == slot.prefix.generation else 0)
            total += own + slot.request.max_tokens
        return total

    def _admit(self, seq: int, key: Any, request: GenerationRequest, tokens: list[int]) -> _Slot:
        system, shared = self.stages(request.prompt, tokens)
        start = time.perf_counter()
        prefix, reused = self._ensure_prefix(tokens, system, shared)
        # Evaluating a new card is charged to the request that needed it: without this, the shared
        # prefixes (about 40 % of a run's time) were missing from the run's summed seconds.
        prefix_s = time.perf_counter() - start
        self._c.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self._c.llama_memory_seq_cp(self.memory, prefix.seq, seq, 0, shared)
        sampler = ConstrainedSampler(self._c, self.vocab, self.n_vocab, seed=request.seed,
                                     temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                                     min_p=request.min_p, grammar=self._grammar(request),
                                     bias=suppression_bias(self._single_tokens, request.suppress))
        return _Slot(seq=seq, key=key, request=request, tokens=tokens, pending=list(tokens[shared:]), pos=shared,
                     shared=shared, cached=reused, prefix=prefix, prefix_generation=prefix.generation,
                     sampler=sampler, prompt_s=prefix_s)

    def _single_tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _release(self, slot: _Slot) -> None:
        slot.sampler.close()
        self._c.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)

    def _completion(self, slot: _Slot) -> Completion:
        raw, per_token = completion_bytes(self.llm.detokenize, slot.out, slot.logprobs)
        return Completion(text=raw.decode("utf-8", errors="replace"), prompt_tokens=len(slot.tokens),
                          completion_tokens=len(slot.out),
                          logprob=sum(slot.logprobs) if self.logprobs and slot.out else None,
                          cached_tokens=slot.cached, finish_reason=slot.finish, prompt_s=slot.prompt_s,
                          decode_s=slot.decode_s, token_logprobs=per_token)

    # the loop -----------------------------------------------------------------------------------
    def stream(self, source: RequestSource, *, should_stop: Callable[[], bool] | None = None
               ) -> Iterator[tuple[Any, Completion]]:
        """(key, completion) as each request finishes; see `Backend.stream`.

        A step's time is shared equally by the sequences in its batch and added to their
        `prompt_s` (before their first token) or `decode_s`, and evaluating a shared prefix is charged to
        the request admitted with it, so summed over requests it adds up to the wall time rather than
        `parallel` times it.
        """
        slots: dict[int, _Slot] = {}
        waiting: tuple[Any, GenerationRequest, list[int]] | None = None
        try:
            while True:
                # Fill free slots while the KV cache has room for the request's prompt and answer. The
                # source is asked at every step: what it sends may depend on the completions so far.
                while len(slots) < self.parallel:
                    if waiting is None:
                        item = source()
                        if item is None:
                            break
                        waiting = (item[0], item[1], self._tokens(item[1]))
                    key, request, tokens = waiting
                    if self._reserved(slots) + len(tokens) + request.max_tokens > self.kv_cells:
                        if slots:
                            break
                        self.reset()
                    seq = min(set(range(self.parallel)) - set(slots))
                    slots[seq] = self._admit(seq, key, request, tokens)
                    waiting = None
                if not slots:
                    return
                if should_stop is not None and should_stop():
                    raise Cancelled("the run was cancelled")
                finished = self._step(slots)
                for slot in finished:
                    del slots[slot.seq]
                    self._release(slot)
                for slot in finished:
                    yield slot.key, self._completion(slot)
        finally:
            for slot in slots.values():
                self._release(slot)

    def _step(self, slots: dict[int, _Slot]) -> list[_Slot]:
        """One llama_decode over every active sequence; returns those that finished."""
        items: list[tuple[int, int, int, bool]] = []
        sampling: list[tuple[int, _Slot]] = []
        budget = self.n_batch
        # Sequences already answering go first (one token each), then prompt slices in slot order.
        order = sorted(slots.values(), key=lambda s: (not s.generating, s.seq))
        for slot in order:
            if budget <= 0:
                break
            take = min(len(slot.pending), budget)
            if not take:
                continue
            for i in range(take):
                last = i == take - 1 and take == len(slot.pending)
                items.append((slot.pending[i], slot.pos + i, slot.seq, last))
                if last:
                    sampling.append((len(items) - 1, slot))
            slot.pending = slot.pending[take:]
            slot.pos += take
            budget -= take
        answering = {slot.seq for slot in slots.values() if slot.out}
        start = time.perf_counter()
        self._decode(items)
        finished: list[_Slot] = []
        c = self._c
        for index, slot in sampling:
            logits = np.ctypeslib.as_array(c.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
            token = slot.sampler.sample(logits)
            if c.llama_vocab_is_eog(self.vocab, token):
                slot.finish = "stop"
                finished.append(slot)
                continue
            if self.logprobs:
                top = float(logits.max())
                slot.logprobs.append(float(logits[token]) - top - float(np.log(np.exp(logits - top).sum())))
            slot.out.append(token)
            if len(slot.out) >= slot.request.max_tokens:
                finished.append(slot)
                continue
            slot.pending = [token]
        share = (time.perf_counter() - start) / len(slots)
        for slot in slots.values():
            if slot.seq in answering:
                slot.decode_s += share
            else:
                slot.prompt_s += share
        return finished

    def close(self) -> None:
        if self._batch is not None:
            self._c.llama_batch_free(self._batch)
            self._batch = None
