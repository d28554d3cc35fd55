"""One interface over every way statcoder runs an LLM: in-process llama.cpp or an OpenAI-compatible server.

Callers build a `BackendSettings`, call `open_backend(settings)`, and send `GenerationRequest`s:

    with open_backend(BackendSettings(model_path=path)) as backend:
        done = backend.generate(GenerationRequest(prompt=Prompt(system, shared, task), seed=1,
                                                  max_tokens=64, grammar=phrase_list_grammar(items=4)))
        print(done.text, done.prompt_tokens, done.completion_tokens, backend.device)

`generate_many` runs a batch; the server backend sends it concurrently to use the server's slots.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol, Sequence

from engine.errors import ModelError

DEFAULT_THREADS = 2
DEFAULT_CONTEXT = 2048


@dataclass(frozen=True)
class HardwareSettings:
    """Where and how the in-process model runs. The defaults suit a 2-core office PC without a GPU.

    `n_gpu_layers`: 0 = CPU only, -1 = every layer. When GPU layers are asked for and this build of
    llama.cpp cannot offload, opening the backend fails (ModelError) unless `allow_cpu_fallback`,
    which turns the failure into a warning recorded on the backend: never a silent CPU run.
    """

    threads: int = DEFAULT_THREADS
    n_ctx: int = DEFAULT_CONTEXT
    n_gpu_layers: int = 0
    n_batch: int = 512
    allow_cpu_fallback: bool = False


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


@dataclass(frozen=True)
class Completion:
    """What came back. `cached_tokens` are prompt tokens reused from the KV cache (not re-evaluated);
    `logprob` is the sum of the sampled tokens' log-probabilities, None where the backend gives none."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    logprob: float | None = None
    cached_tokens: int = 0
    finish_reason: str = "stop"
    prompt_s: float = 0.0
    decode_s: float = 0.0

    @property
    def evaluated_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


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

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc: object) -> None: ...


def open_backend(settings: BackendSettings) -> Backend:
    """Load the model (in-process) or check the server is reachable, and return the backend."""
    if settings.kind == "llama-cpp":
        from engine.llm.llamacpp import LlamaCppBackend

        if not settings.model_path:
            raise ModelError("the in-process backend needs a model file; add one with `statcoder llm add`")
        return LlamaCppBackend(settings)
    if settings.kind == "openai":
        from engine.llm.server import OpenAIServerBackend

        if not settings.base_url:
            raise ModelError("the server backend needs a base URL such as http://127.0.0.1:8080")
        return OpenAIServerBackend(settings)
    raise ModelError(f"unknown backend '{settings.kind}'; choose 'llama-cpp' or 'openai'")
