"""The server backend for real: `python -m llama_cpp.server` with the test model on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from engine.errors import ModelError
from engine.generate import GenerationParams, create_run, run_generation, run_status
from engine.llm.backends import BackendSettings, GenerationRequest, Prompt, open_backend
from engine.llm.constrain import phrase_list_grammar
from tests.engine.llm_support import gemma_path  # noqa: F401

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(gemma_path, tmp_path_factory):
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    port = _free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_path), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2) as reply:
                    json.loads(reply.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not come up within 120 s")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _settings(url: str) -> BackendSettings:
    return BackendSettings(kind="openai", base_url=url, prompt_kind="completion", parallel=3, timeout_s=120)


def test_concurrent_constrained_requests_against_a_real_server(server_url):
    prompt = Prompt(system="Short descriptions of business activities.", shared="Code 11.05: Manufacture of beer",
                    task="Write 3 short texts about: brewing beer", cue="Answer (JSON list of 3 short texts): ")
    grammar = phrase_list_grammar(items=3, max_words=5)
    with open_backend(_settings(server_url)) as backend:
        assert backend.device == f"server {server_url}"
        done = list(backend.generate_many(
            [GenerationRequest(prompt=prompt, seed=s, max_tokens=60, grammar=grammar) for s in (1, 2, 3)]))
    assert len(done) == 3
    for completion in done:
        value = json.loads(completion.text)
        assert len(value) == 3 and all(1 <= len(v.split()) <= 5 for v in value)
        assert completion.prompt_tokens > 10 and 0 < completion.completion_tokens <= 60


def test_a_run_through_the_server_reaches_its_quota(server_url, nace_project):
    run_id = create_run(nace_project, codes=["11.05"], quota=4, seed=3, backend=_settings(server_url),
                        strategies=["notes"], params=GenerationParams(per_request=3, max_words=5))
    result = run_generation(nace_project, run_id)
    status = run_status(nace_project, run_id)
    assert status.per_code == {"11.05": 4} and status.backend == "openai"
    assert result.device.startswith("server http://127.0.0.1")
    backends = {r[0] for r in nace_project.conn.execute("SELECT backend FROM samples WHERE run_id = ?", (run_id,))}
    assert backends == {f"openai (server {server_url})"}


def test_an_unreachable_server_is_a_clear_error():
    with pytest.raises(ModelError, match="cannot reach the model server"):
        open_backend(BackendSettings(kind="openai", base_url=f"http://127.0.0.1:{_free_port()}", timeout_s=3))
