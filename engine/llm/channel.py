"""Log-likelihood of one continuation after each of several prefixes, with the prefixes kept in a KV cache.

The "channel" judge (engine.llm.judge, method "channel") asks how likely the LLM finds the text after
each candidate code's card, log P(text | card), instead of asking it to pick a letter. A card is the
same for every text that has that code among its candidates, so its tokens are evaluated once and kept
as a sequence of its own in a second llama.cpp context (least recently used cards are dropped when the
room runs out). Judging a text is then one llama_decode of k short sequences: each starts from a copy
of its card's cells (no data copied with a unified KV cache) and evaluates only the text's tokens.

Determinism: the same prefixes and continuation, asked again, give the same numbers up to 1e-3 nats.
Scored beside other cards, or after a card was dropped and evaluated again, they may differ by a few
hundredths of a nat (llama.cpp's CPU kernels depend on the batch size); the tests bound it at 0.1,
far below the differences between cards (nats).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.errors import ModelError

MAX_PREFIX_TOKENS = 160        # a card longer than this is cut (its first lines carry the meaning)
MAX_CONTINUATION_TOKENS = 48   # survey answers are short; longer texts are scored on their start


@dataclass(frozen=True)
class ContinuationScores:
    """Per prefix: the summed log-probability of the continuation's tokens, and their count; the cost."""

    logprobs: tuple[float, ...]
    tokens: int
    evaluated_tokens: int = 0      # tokens llama.cpp evaluated for this call (new prefixes + continuations)
    cached_prefixes: int = 0       # prefixes found in the cache
    seconds: float = 0.0


class PrefixScorer:
    """A llama.cpp context of its own beside the backend's, over the same loaded weights."""

    def __init__(self, llama_cpp, llm, *, threads: int, n_batch: int = 512, prefixes: int = 96,
                 max_continuations: int = 12, flash_attention: bool = True):
        from llama_cpp import _internals

        self._c = llama_cpp
        self.llm = llm
        self.n_vocab = llm.n_vocab()
        self.slots = prefixes
        self.max_continuations = max_continuations
        self.n_batch = max(n_batch, max_continuations * (MAX_CONTINUATION_TOKENS + 1))
        base = llm.context_params
        params = type(base).from_buffer_copy(base)
        params.n_seq_max = prefixes + max_continuations
        params.kv_unified = True
        params.n_ctx = prefixes * MAX_PREFIX_TOKENS + max_continuations * (MAX_CONTINUATION_TOKENS + 2) + 256
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_threads = params.n_threads_batch = threads
        # Flash attention skips the KV cells a token's mask hides: with a hundred cards in one unified
        # cache, a text's tokens attend only over their own card's cells instead of every card's. On 2 CPU
        # cores it scores a text after five cached cards in about half the time (0.83 against 1.55 s, and
        # evaluates new cards 1.6 times faster; session 17's probe); without it, every card in the cache
        # is part of every token's attention. The log-probabilities differ from the plain kernel's by
        # rounding only (F16 accumulation).
        if hasattr(params, "flash_attn_type"):
            params.flash_attn_type = (getattr(llama_cpp, "LLAMA_FLASH_ATTN_TYPE_ENABLED", 1) if flash_attention
                                      else getattr(llama_cpp, "LLAMA_FLASH_ATTN_TYPE_DISABLED", 0))
        try:
            self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not make a context for the judge's card cache: {exc}") from exc
        self.ctx = self._ctx.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        # prefix text -> (sequence id, its tokens); least recently used first
        self._cache: OrderedDict[str, tuple[int, list[int]]] = OrderedDict()
        self._free = list(range(prefixes))
        self.evaluated_tokens = 0

    def _tokens(self, text: str, *, bos: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
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
            raise ModelError(f"llama.cpp could not decode the judge's batch of {len(items)} tokens (code {rc})")
        self.evaluated_tokens += len(items)

    def _ensure(self, prefixes: Sequence[str]) -> tuple[list[tuple[int, list[int]]], int, int]:
        """Each prefix's (sequence, tokens), evaluating the missing ones (all but their last token, which
        is evaluated with the continuation so that its logits are at hand). Returns also how many were
        cached and how many tokens were evaluated."""
        wanted = set(prefixes)
        missing = [p for p in dict.fromkeys(prefixes) if p not in self._cache]
        for prefix in missing:
            if not self._free:
                victim = next(key for key in self._cache if key not in wanted)
                seq, _ = self._cache.pop(victim)
                self._c.llama_memory_seq_rm(self.memory, seq, -1, -1)
                self._free.append(seq)
            seq = self._free.pop()
            tokens = self._tokens(prefix, bos=True)[:MAX_PREFIX_TOKENS]
            self._cache[prefix] = (seq, tokens)
        evaluated = 0
        # New prefixes go through in batches of whole prefixes, each in its own sequence.
        items: list[tuple[int, int, int, bool]] = []
        for prefix in missing:
            seq, tokens = self._cache[prefix]
            body = tokens[:-1]
            if items and len(items) + len(body) > self.n_batch:
                self._decode(items)
                items = []
            items += [(t, p, seq, False) for p, t in enumerate(body)]
            evaluated += len(body)
        if items:
            self._decode(items)
        for prefix in prefixes:
            self._cache.move_to_end(prefix)
        return [self._cache[p] for p in prefixes], len(prefixes) - len(missing), evaluated

    def score(self, prefixes: Sequence[str], continuation: str) -> ContinuationScores:
        if not prefixes:
            return ContinuationScores((), 0)
        if len(prefixes) > min(self.max_continuations, self.slots):
            raise ModelError(f"the judge scores at most {min(self.max_continuations, self.slots)} candidates at once")
        start = time.perf_counter()
        cont = self._tokens(continuation, bos=False)[:MAX_CONTINUATION_TOKENS]
        if not cont:
            raise ModelError("there is no text to score")
        held, cached, evaluated = self._ensure(prefixes)
        items: list[tuple[int, int, int, bool]] = []
        offsets = []
        for j, (seq, tokens) in enumerate(held):
            work = self.slots + j
            length = len(tokens) - 1
            self._c.llama_memory_seq_rm(self.memory, work, -1, -1)
            self._c.llama_memory_seq_cp(self.memory, seq, work, 0, length)
            offsets.append(len(items))
            feed = [tokens[-1]] + cont[:-1]
            items += [(t, length + p, work, True) for p, t in enumerate(feed)]
        try:
            self._decode(items)
            out = []
            for offset in offsets:
                total = 0.0
                for p, token in enumerate(cont):
                    logits = np.ctypeslib.as_array(self._c.llama_get_logits_ith(self.ctx, offset + p),
                                                   shape=(self.n_vocab,)).astype(np.float64)
                    top = logits.max()
                    total += float(logits[token] - top - np.log(np.exp(logits - top).sum()))
                out.append(total)
        finally:
            for j in range(len(held)):
                self._c.llama_memory_seq_rm(self.memory, self.slots + j, -1, -1)
        return ContinuationScores(tuple(out), len(cont), evaluated + len(items), cached,
                                  time.perf_counter() - start)

    def reset(self) -> None:
        self._c.llama_memory_clear(self.memory, True)
        self._cache.clear()
        self._free = list(range(self.slots))

    def close(self) -> None:
        if self._batch is not None:
            self._c.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

