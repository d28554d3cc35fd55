"""The in-process backend: one llama-cpp-python model, seeded, reusing the KV cache of a shared prompt prefix.

With `HardwareSettings.parallel` 1, requests run one at a time through llama-cpp-python's `Llama`;
above 1, through `BatchedDecoder` (batched.py), up to `parallel` sequences in one llama.cpp batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from engine.errors import ModelError
from engine.llm.base import BackendSettings, Completion, GenerationRequest, Prompt, RequestSource, kv_cells
from engine.llm.sampling import ConstrainedSampler, completion_bytes, suppression_bias
from engine.llm.registry import ModelInfo, inspect_model, list_models

log = logging.getLogger(__name__)


def _identify(path: Path) -> ModelInfo:
    """The registry's entry for this file when it has one (no re-hash), else read it fresh."""
    size = path.stat().st_size
    for model in list_models():
        if Path(model.path) == path and model.size_bytes == size:
            return model
    return inspect_model(path)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """llama.cpp prints its load log on fd 2 from C; keep the terminal and test output clean."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class LlamaCppBackend:
    """A GGUF model loaded with llama-cpp-python. Thread-safe by a lock: one request at a time."""

    name = "llama-cpp"
    # Set by a generation run while it runs (its cancel token's check): called before every token, it
    # raises Cancelled to stop the request, so a pause takes effect within one token instead of after a
    # request that can take a minute on a large model.
    interrupt: Callable[[], None] | None = None

    def __init__(self, settings: BackendSettings):
        import llama_cpp

        self.settings = settings
        path = Path(settings.model_path or "").expanduser().resolve()
        info = _identify(path)
        self.model_name, self.model_sha256 = info.name, info.sha256
        self.prompt_kind = settings.prompt_kind or info.prompt_kind
        self.warnings: list[str] = []
        hw = settings.hardware
        gpu_layers = hw.n_gpu_layers
        self.device = "cpu"
        if gpu_layers != 0:
            if llama_cpp.llama_supports_gpu_offload():
                total = info.n_layers
                shown = total if gpu_layers < 0 else min(gpu_layers, total)
                self.device = f"gpu ({shown} of {total} layers offloaded)"
            else:
                message = (f"GPU offload was requested ({gpu_layers} layers) but this llama-cpp-python build "
                           "has no GPU support, so the model would run on the CPU")
                if not hw.allow_cpu_fallback:
                    raise ModelError(message + "; install a GPU build of llama-cpp-python or set GPU layers to 0")
                self.warnings.append(message)
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                log.warning(message)
                self.device = "cpu (GPU offload requested but unavailable)"
                gpu_layers = 0
        try:
            with _quiet_stderr():
                self.llm = llama_cpp.Llama(
                    model_path=str(path), n_ctx=hw.n_ctx, n_threads=hw.threads, n_threads_batch=hw.threads,
                    n_batch=hw.n_batch, n_gpu_layers=gpu_layers, seed=0, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
        self.parallel = max(1, int(hw.parallel))
        self._batched = None
        self._scorer = None     # the channel judge's card cache (channel.py), made on first use
        self._kv_user = "single"
        if self.parallel > 1:
            self._open_batched_context(hw, llama_cpp)
        self._lock = threading.Lock()
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._llama_cpp = llama_cpp
        self._formatter = None
        self._shared_key: tuple[str, str] | None = None
        self._stage_tokens: tuple[list[int], list[int]] = ([], [])
        if self.prompt_kind == "chat":
            template = self.llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelError(f"{path.name} has no chat template; use prompt kind 'completion' for it")
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def token_text(token: int) -> str:
                return self.llm._model.token_get_text(token) if token != -1 else ""

            self._formatter = Jinja2ChatFormatter(template, eos_token=token_text(self.llm.token_eos()),
                                                  bos_token=token_text(self.llm.token_bos()))

    def _open_batched_context(self, hw, llama_cpp) -> None:
        """Replace the context `Llama` made (one sequence) by one for `parallel` sequences plus the
        shared-prefix sequences, with a unified KV cache so copied prefix cells are shared, not duplicated."""
        from llama_cpp import _internals

        from engine.llm.batched import PREFIX_SLOTS

        params = self.llm.context_params
        params.n_seq_max = self.parallel + PREFIX_SLOTS
        params.kv_unified = True
        params.n_ctx = kv_cells(hw)
        self.llm._ctx.close()
        try:
            with _quiet_stderr():
                self.llm._ctx = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            self.llm.close()
            raise ModelError(f"llama.cpp could not make a context for {self.parallel} parallel sequences "
                             f"({params.n_ctx} KV cells): {exc}; lower `parallel` or the context size") from exc

    def _switch_to(self, user: str) -> None:
        """On a batched context, `Llama`'s one-sequence calls (choice_logprobs, decode_speed) and the
        batched decoder each track what they put in the KV cache, not what the other did: when the
        user changes, clear the cache (each then re-evaluates its prefix once)."""
        if self.parallel > 1 and self._kv_user != user:
            self._decoder().reset()
            self.llm.reset()
        self._kv_user = user

    def _decoder(self):
        if self._batched is None:
            from .batched import BatchedDecoder

            self._batched = BatchedDecoder(
                self._llama_cpp, self.llm, vocab=self._vocab, parallel=self.parallel,
                n_batch=self.settings.hardware.n_batch, n_ctx_per_request=self.settings.hardware.n_ctx,
                logprobs=self.settings.logprobs, tokens_for=self.tokens_for, stages=self._stages)
        return self._batched

    # prompts ------------------------------------------------------------------------------------
    def tokens_for(self, prompt: Prompt) -> list[int]:
        """The prompt's tokens as this model sees them (chat template applied for chat models)."""
        if self._formatter is not None:
            rendered = self._formatter(messages=prompt.messages())
            add_bos = not getattr(rendered, "added_special", False)
            return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=add_bos, special=True)
        return self.llm.tokenize(prompt.completion_text().encode("utf-8"), add_bos=True, special=False)

    # generation ---------------------------------------------------------------------------------
    def _common(self, a: list[int], b: list[int]) -> int:
        n = 0
        for x, y in zip(a, b):
            if x != y:
                break
            n += 1
        return n

    def _stages(self, prompt: Prompt, tokens: list[int]) -> tuple[int, int]:
        """Token counts of the prompt's two shared stages: the system text (the same for every code)
        and the system text plus the code's card (the same for every task of one code)."""
        key = (prompt.system, prompt.shared)
        if self._shared_key != key:
            system_only = self.tokens_for(Prompt(prompt.system, "", "", ""))
            with_card = self.tokens_for(Prompt(prompt.system, prompt.shared, "", ""))
            self._shared_key, self._stage_tokens = key, (system_only, with_card)
        system_only, with_card = self._stage_tokens
        shared = min(self._common(with_card, tokens), len(tokens) - 1)
        return min(self._common(system_only, tokens), shared), shared

    def _prime(self, tokens: list[int], system: int, shared: int) -> int:
        """Put `tokens[:shared]` in the KV cache, reusing what is already there; returns the reused count.

        Each stage (system text, code card) is always evaluated as its own batch, whether it is reused
        or not, so the cache holds the same numbers either way and a seed gives the same text with or
        without reuse, and after a resume.
        """
        llm = self.llm
        cached = list(llm.input_ids[: llm.n_tokens])
        for stage in (shared, system):
            if stage and len(cached) >= stage and cached[:stage] == tokens[:stage] \
                    and llm._ctx.kv_cache_seq_rm(-1, stage, -1):
                llm.n_tokens = stage
                if stage < shared:
                    llm.eval(tokens[stage:shared])
                return stage
        llm.reset()
        if system:
            llm.eval(tokens[:system])
        if shared > system:
            llm.eval(tokens[system:shared])
        return 0

    def generate(self, request: GenerationRequest) -> Completion:
        """One completion. Same seed, prompt and model give the same text on the CPU.

        The KV cache keeps the code's shared prompt prefix (system text and the code's notes): it is
        evaluated once per code and reused by every later request, which `Completion.cached_tokens`
        reports. Output is constrained by `request.grammar` (GBNF) or `request.json_schema`.
        """
        grammar = request.grammar
        if grammar is None and request.json_schema is not None:
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            grammar = json_schema_to_gbnf(json.dumps(request.json_schema))
        if self.parallel > 1:
            return next(iter(self.generate_many([request])))
        c = self._llama_cpp
        with self._lock:
            llm = self.llm
            tokens = self.tokens_for(request.prompt)
            if len(tokens) + request.max_tokens > llm.n_ctx():
                raise ModelError(f"the prompt ({len(tokens)} tokens) plus {request.max_tokens} new tokens exceed "
                                 f"the context size {llm.n_ctx()}; raise the context size in the settings")
            start = time.perf_counter()
            cached = self._prime(tokens, *self._stages(request.prompt, tokens))
            llm.eval(tokens[llm.n_tokens:])
            first_token_at = time.perf_counter()
            out: list[int] = []
            logprobs: list[float] = []
            finish = "length"
            n_vocab = llm.n_vocab()
            with ConstrainedSampler(c, self._vocab, n_vocab, seed=request.seed, temperature=request.temperature,
                                    top_k=request.top_k, top_p=request.top_p, min_p=request.min_p,
                                    grammar=grammar,
                                    bias=suppression_bias(lambda t: llm.tokenize(t.encode("utf-8"), add_bos=False,
                                                                                 special=False), request.suppress)
                                    ) as sampler:
                while True:
                    logits = np.ctypeslib.as_array(c.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
                    token = sampler.sample(logits)
                    if c.llama_vocab_is_eog(self._vocab, token):
                        finish = "stop"
                        break
                    if self.settings.logprobs:
                        # From the model's raw logits: before the grammar, the suppression bias and the
                        # temperature, so it is the model's own probability of the token.
                        top = float(logits.max())
                        logprobs.append(float(logits[token]) - top - float(np.log(np.exp(logits - top).sum())))
                    out.append(token)
                    if len(out) >= request.max_tokens:
                        break
                    if self.interrupt is not None:
                        self.interrupt()
                    llm.eval([token])
            end = time.perf_counter()
            raw, per_token = completion_bytes(llm.detokenize, out, logprobs)
            text = raw.decode("utf-8", errors="replace")
        return Completion(text=text, prompt_tokens=len(tokens), completion_tokens=len(out),
                          logprob=sum(logprobs) if self.settings.logprobs and out else None, cached_tokens=cached,
                          finish_reason=finish, prompt_s=first_token_at - start, decode_s=end - first_token_at,
                          token_logprobs=per_token)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        """Completions in request order; with `parallel` > 1 up to that many are computed together."""
        if self.parallel == 1:
            for request in requests:
                yield self.generate(request)
            return
        pending = iter(enumerate(requests))
        done: dict[int, Completion] = {}
        following = 0
        for index, completion in self.stream(lambda: next(pending, None)):
            done[index] = completion
            while following in done:
                yield done.pop(following)
                following += 1

    def stream(self, source: RequestSource, *, should_stop: Callable[[], bool] | None = None
               ) -> Iterator[tuple[Any, Completion]]:
        """(key, completion) as requests finish, pulling from `source` when a slot is free (Backend.stream).

        With `parallel` 1 the requests run one at a time, in the order they are pulled.
        """
        if self.parallel == 1:
            while True:
                if should_stop is not None and should_stop():
                    from ..errors import Cancelled

                    raise Cancelled("the run was cancelled")
                item = source()
                if item is None:
                    return
                yield item[0], self.generate(item[1])
        with self._lock:
            self._switch_to("batched")
            yield from self._decoder().stream(source, should_stop=should_stop)

    def decode_speed(self, *, n_tokens: int = 64, seed: int = 0) -> float:
        """Raw llama.cpp decode tokens/s of this model and settings: no grammar, prompt time excluded."""
        prompt = Prompt(system="Write a long list of food products, one per line.", shared="", task="")
        with self._lock:
            if self._batched is not None:
                self._batched.reset()
            self.llm.reset()
            tokens = self.tokens_for(prompt)
            self.llm.set_seed(seed)
            count, first = 0, 0.0
            for token in self.llm.generate(tokens, temp=0.8, repeat_penalty=1.0):
                if count == 0:
                    first = time.perf_counter()
                count += 1
                if count > n_tokens:
                    break
            elapsed = time.perf_counter() - first
            self.llm.reset()
            if self._batched is not None:
                self._batched.reset()
        return n_tokens / elapsed if elapsed > 0 else 0.0

    # choices (engine.llm.judge) -----------------------------------------------------------------
    def _option_tokens(self, options: Sequence[str]) -> list[list[int]]:
        """Per option, the single tokens that spell it, bare or after a space ('A', ' A')."""
        key = tuple(options)
        found = getattr(self, "_option_cache", {}).get(key)
        if found is None:
            found = []
            for option in options:
                ids = set()
                for variant in (option, " " + option):
                    toks = self.llm.tokenize(variant.encode("utf-8"), add_bos=False, special=False)
                    if len(toks) == 1:
                        ids.add(toks[0])
                if not ids:
                    raise ModelError(f"the option '{option}' is not a single token for {self.model_name}")
                found.append(sorted(ids))
            self._option_cache = {**getattr(self, "_option_cache", {}), key: found}
        return found

    def choice_logprobs(self, prompt: Prompt, options: Sequence[str]) -> "ChoiceScores":
        """One forward pass over the prompt; the log-probabilities of the options as the next token,
        normalised over the options (what a grammar allowing only them would sample at temperature 1).
        The prompt's shared prefix is reused from the KV cache as in `generate`."""
        from engine.llm.judge import ChoiceScores

        ids = self._option_tokens(options)
        with self._lock:
            llm = self.llm
            self._switch_to("single")
            tokens = self.tokens_for(prompt)
            if len(tokens) + 1 > self.settings.hardware.n_ctx:
                raise ModelError(f"the prompt ({len(tokens)} tokens) exceeds the context size {llm.n_ctx()}; "
                                 "raise the context size or show fewer candidates")
            start = time.perf_counter()
            cached = self._prime(tokens, *self._stages(prompt, tokens))
            llm.eval(tokens[llm.n_tokens:])
            n_vocab = llm.n_vocab()
            logits = np.ctypeslib.as_array(self._llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1),
                                           shape=(n_vocab,)).astype(np.float64)
            seconds = time.perf_counter() - start
        scores = np.array([np.logaddexp.reduce(logits[i]) for i in ids])
        scores -= np.logaddexp.reduce(scores)
        return ChoiceScores(tuple(float(s) for s in scores), prompt_tokens=len(tokens), cached_tokens=cached,
                            seconds=seconds)

    def continuation_logprobs(self, prefixes: Sequence[str], continuation: str) -> "ContinuationScores":
        """log P(continuation | prefix) for each prefix, plain text (no chat template): the channel judge's
        score of a text after each candidate's card. Prefixes stay cached in a context of their own."""
        from engine.llm.channel import PrefixScorer

        with self._lock:
            if self._scorer is None:
                self._scorer = PrefixScorer(self._llama_cpp, self.llm, threads=self.settings.hardware.threads,
                                            n_batch=self.settings.hardware.n_batch)
            return self._scorer.score(prefixes, continuation)

    def batch_counters(self) -> dict[str, int]:
        """llama_decode calls and tokens they evaluated on the batched path since opening (zeros at parallel 1)."""
        if self._batched is None:
            return {"steps": 0, "evaluated_tokens": 0}
        return {"steps": self._batched.steps, "evaluated_tokens": self._batched.evaluated_tokens}

    def reset_cache(self) -> None:
        """Forget the KV cache, so the next prompt is evaluated in full (for measuring prefix reuse)."""
        with self._lock:
            self.llm.reset()
            if self._batched is not None:
                self._batched.reset()
            if self._scorer is not None:
                self._scorer.reset()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if getattr(self, "_batched", None) is not None:
            self._batched.close()
            self._batched = None
        if getattr(self, "_scorer", None) is not None:
            self._scorer.close()
            self._scorer = None
        if llm is not None:
            llm.close()
            self.llm = None

    def __enter__(self) -> "LlamaCppBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
