"""One interface over every way statcoder runs an LLM: in-process llama.cpp or an OpenAI-compatible server.

Callers build a `BackendSettings`, call `open_backend(settings)`, and send `GenerationRequest`s:

    with open_backend(BackendSettings(model_path=path)) as backend:
        done = backend.generate(GenerationRequest(prompt=Prompt(system, shared, task), seed=1,
                                                  max_tokens=64, grammar=phrase_list_grammar(items=4)))
        print(done.text, done.prompt_tokens, done.completion_tokens, backend.device)

`generate_many` runs a batch; the server backend sends it concurrently to use the server's slots.
"""

from __future__ import annotations

from engine.errors import ModelError, with_hint
from engine.llm.base import (DEFAULT_CONTEXT, DEFAULT_PARALLEL, DEFAULT_THREADS, Backend, BackendSettings,
                             Completion, GenerationRequest, HardwareSettings, Prompt, RequestSource, kv_cells,
                             stream_in_rounds)

__all__ = ["DEFAULT_CONTEXT", "DEFAULT_PARALLEL", "DEFAULT_THREADS", "Backend", "BackendSettings", "Completion",
           "GenerationRequest", "HardwareSettings", "Prompt", "RequestSource", "kv_cells", "open_backend",
           "stream_in_rounds"]


def open_backend(settings: BackendSettings) -> Backend:
    """Load the model (in-process) or check the server is reachable, and return the backend."""
    if settings.kind == "llama-cpp":
        from engine.llm.llamacpp import LlamaCppBackend

        if not settings.model_path:
            raise with_hint(ModelError("the in-process backend needs a model file"), "add_llm")
        return LlamaCppBackend(settings)
    if settings.kind == "openai":
        from engine.llm.server import OpenAIServerBackend

        if not settings.base_url:
            raise ModelError("the server backend needs a base URL such as http://127.0.0.1:8080")
        return OpenAIServerBackend(settings)
    raise ModelError(f"unknown backend '{settings.kind}'; choose 'llama-cpp' or 'openai'")
