"""The data every backend shares: settings, prompts, requests, completions and the Backend protocol.

Its own module so that the implementations (llamacpp.py, server.py) and the factory (backends.py)
all import it and none imports another: no import cycle.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

DEFAULT_THREADS = 2
DEFAULT_CONTEXT = 2048
# Chosen by bench/generation_batched.py on a 2-core CPU (generation-batched-nace-10-11.md): 16 sequences
# gave 1.04-1.11 x the kept samples/s of one at a time in whole runs and 1.08-1.63 x in alternating A/B
# rounds under load (1.07-1.09 x on a quiet machine), 2-8 no gain (llama.cpp's CPU kernels decode fewer than 16 tokens per step no faster than one),
# 32 between 0.91 and 1.30 x.
DEFAULT_PARALLEL = 16
# KV cache cells each parallel sequence beyond the first may add: its task text and its answer. The
# shared prompt prefix (system text and code card) is stored once, whatever the number of sequences.
CELLS_PER_EXTRA_SEQUENCE = 512


@dataclass(frozen=True)
class HardwareSettings:
    """Where and how the in-process model runs. The defaults suit a 2-core office PC without a GPU.

    `n_gpu_layers`: 0 = CPU only, -1 = every layer. When GPU layers are asked for and this build of
    llama.cpp cannot offload, opening the backend fails (ModelError) unless `allow_cpu_fallback`,
    which turns the failure into a warning recorded on the backend: never a silent CPU run.

    `parallel`: sequences decoded together in one llama.cpp batch (in-process backend). 1 is the
    one-request-at-a-time path; above 1, a request's prompt and answer are computed beside up to
    `parallel - 1` others, each weight read once per step for all of them. `n_ctx` stays the limit
    of one request (prompt plus answer); the KV cache grows by `kv_cells` for the extra sequences.
    """

    threads: int = DEFAULT_THREADS
    n_ctx: int = DEFAULT_CONTEXT
    n_gpu_layers: int = 0
    n_batch: int = 512
    allow_cpu_fallback: bool = False
    parallel: int = DEFAULT_PARALLEL


def kv_cells(hardware: HardwareSettings) -> int:
    """KV cache cells (tokens) the in-process backend allocates for these settings."""
    extra = max(hardware.parallel, 1) - 1
    return hardware.n_ctx + extra * min(hardware.n_ctx, CELLS_PER_EXTRA_SEQUENCE)


@dataclass(frozen=True)
class BackendSettings:
    """Which backend to open. kind 'llama-cpp' needs `model_path`; kind 'openai' needs `base_url`.

    For a server, `server_model` is the model name it serves, `parallel` the number of concurrent
    requests, `prompt_kind` 'chat' or 'completion' (the server knows its template, we do not), and
    `constraint` 'grammar' (GBNF: llama-server, llama-cpp-python) or 'json_schema' (vLLM and others).
    """

    kind: str = "llama-cpp"
    model_path: str | None = None
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    prompt_kind: str | None = None          # None: from the model's metadata (in-process), else 'chat'
    logprobs: bool = True
    base_url: str | None = None
    server_model: str = "default"
    api_key: str | None = None
    parallel: int = 4
    timeout_s: float = 300.0
    constraint: str = "grammar"

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("api_key", None)  # never stored in a project file
        return data


@dataclass(frozen=True)
class Prompt:
    """A prompt in three parts, ordered for KV reuse: what never changes, what is shared per code, the task.

    Chat models get `system` as the system message and `shared + task` as the user message;
    completion (base) models get one document ending in `cue`, after which output starts.
    """

    system: str
    shared: str
    task: str
    cue: str = ""

    def completion_text(self) -> str:
        return f"{self.system}\n\n{self.shared}\n\n{self.task}\n{self.cue}"

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": f"{self.shared}\n\n{self.task}"}]

    def hash(self) -> str:
        data = "\x1e".join([self.system, self.shared, self.task, self.cue]).encode("utf-8")
        return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class GenerationRequest:
    prompt: Prompt
    seed: int
    max_tokens: int = 96
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    grammar: str | None = None
    json_schema: dict | None = None
    # Diversity control (Chung et al. 2023): (word, penalty) pairs; the in-process llama.cpp backends lower
    # the logits of the word's single-token spellings by the penalty. Other backends ignore it.
    suppress: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    """What came back. `cached_tokens` are prompt tokens reused from the KV cache (not re-evaluated);
    `logprob` is the sum of the sampled tokens' log-probabilities, None where the backend gives none.

    `token_logprobs`: one `(end, logprob)` pair per completion token, in order, so that the request's
    logprob can be split by phrase (SuperGen per phrase, engine.generate.writer). `end` is the byte
    offset in the completion's UTF-8 bytes where the token's bytes end; token i covers the bytes
    `[end of token i-1, end)` (the first starts at 0). Offsets are in bytes, not characters, because
    one token may hold part of a multi-byte character. The bytes are `text.encode("utf-8")` whenever
    the output is valid UTF-8; an output cut off inside a character (finish 'length') ends in a
    replacement character in `text`, and the offsets of its last tokens may pass the end of those
    bytes. `logprob` is the same sum as `sum(lp for _, lp in token_logprobs)`. Empty where the
    backend gives no per-token log-probabilities (the server backend, or `logprobs` off)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    logprob: float | None = None
    cached_tokens: int = 0
    finish_reason: str = "stop"
    prompt_s: float = 0.0
    decode_s: float = 0.0
    token_logprobs: tuple[tuple[int, float], ...] = ()

    @property
    def evaluated_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


def span_logprob(token_logprobs: Sequence[tuple[int, float]], start: int, end: int) -> tuple[float, int]:
    """(summed logprob, token count) of the tokens whose bytes overlap the byte span `[start, end)`
    (`Completion.token_logprobs`). A token that also holds bytes outside the span (a quote, a comma,
    the space before a word) counts whole: a phrase's score is the probability of the tokens that
    spelled it."""
    total, count, begin = 0.0, 0, 0
    for stop, logprob in token_logprobs:
        if stop > start and begin < end:
            total += logprob
            count += 1
        begin = stop
        if begin >= end:
            break
    return total, count


RequestSource = Callable[[], "tuple[Any, GenerationRequest] | None"]
"""What `Backend.stream` pulls from when a sequence slot is free: (the caller's key, the request), or
None when the caller has nothing to send right now (it is asked again after the next completion)."""


class Backend(Protocol):
    """A loaded model ready to generate. `device` says where it really runs ('cpu', 'gpu ...', 'server ...')."""

    name: str
    device: str
    prompt_kind: str
    model_name: str
    model_sha256: str
    warnings: list[str]

    def generate(self, request: GenerationRequest) -> Completion: ...

    def generate_many(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        """Completions in request order; a failed request raises when its turn comes."""
        ...

    def stream(self, source: RequestSource, *, should_stop: Callable[[], bool] | None = None
               ) -> Iterator[tuple[Any, Completion]]:
        """(key, completion) in the order they finish, pulling a new request from `source` whenever a
        slot is free; ends when `source` has nothing and nothing is in flight. `should_stop` is asked
        before every decoding step: when it says True, work in flight is dropped and Cancelled raised."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc: object) -> None: ...


def stream_in_rounds(generate_many: Callable[[Sequence[GenerationRequest]], Iterator[Completion]],
                     source: RequestSource, *, size: int, should_stop: Callable[[], bool] | None = None
                     ) -> Iterator[tuple[Any, Completion]]:
    """`Backend.stream` for a backend that only has `generate_many`: rounds of up to `size` requests,
    each round sent at once and finished before the next is pulled."""
    from engine.errors import Cancelled

    while True:
        if should_stop is not None and should_stop():
            raise Cancelled("the run was cancelled")
        round_: list[tuple[Any, GenerationRequest]] = []
        while len(round_) < max(size, 1):
            item = source()
            if item is None:
                break
            round_.append(item)
        if not round_:
            return
        for (key, _), completion in zip(round_, generate_many([r for _, r in round_])):
            yield key, completion
