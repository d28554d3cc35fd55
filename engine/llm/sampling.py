"""Token sampling with a grammar that costs little: top-k first, the grammar on the survivors.

llama-cpp-python's default chain checks the grammar against the whole vocabulary (150-260k tokens)
at every step, which more than halves decode speed. Checking only the top-k candidates is exact
whenever one of them is allowed; when none is, this step falls back to the full-vocabulary check,
so the output always satisfies the grammar.
"""

from __future__ import annotations

import ctypes

import numpy as np

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


def suppression_bias(tokenize, suppress) -> dict[int, float]:
    """Token id -> logit offset for (word, penalty) pairs: every spelling of the word (with and without a
    leading space, lower case and capitalised) that is one token. Multi-token spellings are left alone:
    lowering their first piece would hit every other word that starts with it."""
    bias: dict[int, float] = {}
    for word, penalty in suppress:
        for variant in {word, " " + word, word.capitalize(), " " + word.capitalize()}:
            ids = tokenize(variant)
            if len(ids) == 1:
                bias[ids[0]] = min(bias.get(ids[0], 0.0), -abs(penalty))
    return bias


def completion_bytes(detokenize, tokens: list[int], logprobs: list[float]) -> tuple[bytes, tuple[tuple[int, float], ...]]:
    """The completion's bytes and `Completion.token_logprobs`: (byte end, logprob) per token.

    `detokenize(tokens) -> bytes`. Each token's piece is its own bytes (part of a multi-byte character
    stays bytes); when the pieces do not add up to the whole (a tokenizer that drops a leading space
    at the start), each end is the length of the detokenized prefix instead. Empty `logprobs`: none.
    """
    whole = detokenize(tokens) if tokens else b""
    if not logprobs:
        return whole, ()
    pieces = [detokenize([t]) for t in tokens]
    if b"".join(pieces) == whole:
        ends, at = [], 0
        for piece in pieces:
            at += len(piece)
            ends.append(at)
    else:
        ends = []
        for i in range(1, len(tokens) + 1):
            ends.append(max(len(detokenize(tokens[:i])), ends[-1] if ends else 0))
    return whole, tuple(zip(ends, logprobs))


class ConstrainedSampler:
    """Seeded sampler for one request: logit bias (diversity control), top-k, grammar, top-p, min-p,
    temperature, then a seeded draw."""

    def __init__(self, llama_cpp, vocab, n_vocab: int, *, seed: int, temperature: float, top_k: int,
                 top_p: float, min_p: float, grammar: str | None, bias: dict[int, float] | None = None):
        self._bias_ids = np.array(sorted(bias or {}), dtype=np.int64)
        self._bias_values = np.array([bias[i] for i in self._bias_ids.tolist()], dtype=np.float32) if bias else None
        self._c = llama_cpp
        self.n_vocab = n_vocab
        self._data = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._array = llama_cpp.llama_token_data_array(
            data=self._data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=n_vocab, selected=-1, sorted=False)
        self._owned: list = []
        self._top_k = self._own(llama_cpp.llama_sampler_init_top_k(max(top_k, 1)))
        self._grammar = None
        if grammar:
            self._grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not self._grammar:
                self.close()
                raise ValueError("llama.cpp rejected the output grammar")
            self._owned.append(self._grammar)
        if temperature <= 0:
            self._tail = [self._own(llama_cpp.llama_sampler_init_greedy())]
        else:
            self._tail = [self._own(llama_cpp.llama_sampler_init_top_p(top_p, 1)),
                          self._own(llama_cpp.llama_sampler_init_min_p(min_p, 1)),
                          self._own(llama_cpp.llama_sampler_init_temp(temperature)),
                          self._own(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))]
        self.full_vocab_fallbacks = 0

    def _own(self, sampler):
        self._owned.append(sampler)
        return sampler

    def _load(self, logits: np.ndarray) -> None:
        self._data["id"] = self._ids
        self._data["logit"] = logits
        self._array.size = self.n_vocab
        self._array.selected = -1
        self._array.sorted = False

    def _keep_allowed(self) -> int:
        """Drop the candidates the grammar ruled out (logit -inf) and re-sort the rest, best first.

        The grammar masks candidates without re-sorting, and the later samplers trust the sorted
        flag that top-k set; left as is, a masked first entry turns the probabilities into NaN.
        """
        head = self._data[: self._array.size]
        allowed = head[np.isfinite(head["logit"])]
        allowed = allowed[np.argsort(-allowed["logit"], kind="stable")]
        head[: len(allowed)] = allowed
        self._array.size = len(allowed)
        self._array.sorted = True
        return len(allowed)

    def sample(self, logits: np.ndarray) -> int:
        """Pick the next token from this step's logits and advance the grammar."""
        ref = ctypes.byref(self._array)
        if self._bias_values is not None:
            logits = logits.copy()   # llama.cpp's buffer: the caller's logprob is the model's own
            logits[self._bias_ids] += self._bias_values
        self._load(logits)
        self._c.llama_sampler_apply(self._top_k, ref)
        if self._grammar is not None:
            self._c.llama_sampler_apply(self._grammar, ref)
            if not self._keep_allowed():
                self.full_vocab_fallbacks += 1
                self._load(logits)
                self._c.llama_sampler_apply(self._grammar, ref)
                self._c.llama_sampler_apply(self._top_k, ref)
                self._keep_allowed()
        for sampler in self._tail:
            self._c.llama_sampler_apply(sampler, ref)
        token = int(self._data["id"][self._array.selected])
        if self._grammar is not None:
            self._c.llama_sampler_accept(self._grammar, token)
        return token

    def close(self) -> None:
        for sampler in self._owned:
            self._c.llama_sampler_free(sampler)
        self._owned = []

    def __enter__(self) -> "ConstrainedSampler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
