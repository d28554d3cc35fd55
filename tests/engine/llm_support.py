"""Shared pieces of the LLM and generation tests: the Gemma 3 270M test model and a scripted backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from engine.llm.backends import BackendSettings, Completion, GenerationRequest, HardwareSettings

# One thread: CI runners and this machine are shared, and llama.cpp's 2-thread barrier collapses
# under contention (measured: 26 tok/s with 1 thread vs 2 tok/s with 2 on a loaded 2-core box).
# parallel=1: these settings test the one-request-at-a-time path, whose texts do not depend on what
# else is in flight; the batched path has its own settings and tests (test_llm_batched.py).
TEST_HARDWARE = HardwareSettings(threads=1, n_ctx=1024, parallel=1)


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory) -> Path:
    from engine.llm.registry import test_model_path

    return test_model_path(directory=tmp_path_factory.mktemp("test-model"))


def gemma_settings(path: Path, *, parallel: int = 1) -> BackendSettings:
    hardware = TEST_HARDWARE if parallel == 1 else HardwareSettings(threads=1, n_ctx=1024, parallel=parallel)
    return BackendSettings(model_path=str(path), hardware=hardware)


class ScriptedBackend:
    """A backend that answers from a function of the request: for unit tests of the run logic."""

    name = "openai"
    device = "cpu"
    prompt_kind = "chat"
    model_name = "scripted"
    model_sha256 = "server:scripted"

    def __init__(self, answer=None):
        self.answer = answer or (lambda request: json.dumps([f"phrase {request.seed} {i}" for i in range(6)]))
        self.requests: list[GenerationRequest] = []
        self.warnings: list[str] = []

    def generate(self, request: GenerationRequest) -> Completion:
        self.requests.append(request)
        text = self.answer(request)
        return Completion(text=text, prompt_tokens=100, completion_tokens=20, cached_tokens=60)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        for request in requests:
            yield self.generate(request)

    def close(self) -> None:
        pass


SCRIPTED = BackendSettings(kind="openai", base_url="http://scripted.invalid", server_model="scripted")
