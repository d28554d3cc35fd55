"""The server backend: any OpenAI-compatible HTTP server (llama-server, vLLM, llama-cpp-python's server).

Only the standard library: urllib for HTTP and a thread pool, so a batch of requests reaches the
server at once and fills its parallel slots. llama.cpp servers take a GBNF `grammar`; others take
a JSON schema in `response_format` (BackendSettings.constraint picks which).
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

from engine.errors import ModelError
from engine.llm.base import BackendSettings, Completion, GenerationRequest, Prompt, RequestSource, stream_in_rounds


def _logaddexp(*values: float) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _first_top_logprobs(reply: dict[str, Any]) -> list[tuple[str, float]]:
    """(token, logprob) alternatives at the first generated position, from a completions reply
    (`logprobs.top_logprobs[0]`, a dict) or a chat reply (`logprobs.content[0].top_logprobs`, a list)."""
    try:
        logprobs = reply["choices"][0].get("logprobs") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return []
    content = logprobs.get("content")
    if content:
        return [(str(e.get("token", "")), float(e["logprob"])) for e in content[0].get("top_logprobs") or []
                if e.get("logprob") is not None]
    top = logprobs.get("top_logprobs")
    if top and isinstance(top[0], dict):
        return [(str(t), float(lp)) for t, lp in top[0].items() if lp is not None]
    return []


class OpenAIServerBackend:
    """Requests to `settings.base_url`; `parallel` of them in flight at once in `generate_many`."""

    name = "openai"

    def __init__(self, settings: BackendSettings):
        self.settings = settings
        self.base_url = (settings.base_url or "").rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.prompt_kind = settings.prompt_kind or "chat"
        self.warnings: list[str] = []
        models = self._call("GET", "/v1/models", None, timeout=min(settings.timeout_s, 15.0))
        served = [m.get("id") for m in models.get("data", []) if isinstance(m, dict)]
        self.server_model = settings.server_model
        if self.server_model == "default" and served:
            self.server_model = served[0]
        self.model_name = self.server_model
        self.model_sha256 = f"server:{settings.server_model}"
        self.device = f"server {self.base_url}"
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.parallel), thread_name_prefix="statcoder-llm")

    def _call(self, method: str, path: str, body: dict | None, *, timeout: float) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        if self.settings.api_key:
            request.add_header("Authorization", f"Bearer {self.settings.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:300]
            raise ModelError(f"the server at {self.base_url} answered {exc.code} to {path}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ModelError(f"cannot reach the model server at {self.base_url} ({exc})") from exc
        except ValueError as exc:
            raise ModelError(f"the server at {self.base_url} sent a reply that is not JSON to {path}") from exc

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.server_model, "max_tokens": request.max_tokens,
                                "temperature": request.temperature, "top_p": request.top_p, "top_k": request.top_k,
                                "min_p": request.min_p, "seed": request.seed, "stream": False}
        if self.settings.constraint == "json_schema" and request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "texts", "schema": request.json_schema}}
        elif request.grammar:
            body["grammar"] = request.grammar
        if self.prompt_kind == "chat":
            body["messages"] = request.prompt.messages()
            return "/v1/chat/completions", body
        body["prompt"] = request.prompt.completion_text()
        return "/v1/completions", body

    def generate(self, request: GenerationRequest) -> Completion:
        """One request; the server's own usage figures give the token counts.

        No log-probabilities: `logprob` is None and `token_logprobs` empty, so SuperGen leaves a
        server run's samples out. Asking for them is not straightforward across servers: the
        completions reply's `logprobs.text_offset` counts characters, not bytes, and llama-cpp-python's
        server counts it from the start of the prompt while others count from the completion; its
        `tokens` are strings, in which a token holding part of a multi-byte character is already
        garbled; and a server may report them after its grammar or temperature, not from the raw logits
        as the in-process backends do. A per-phrase split built on them would not mean the same thing."""
        path, body = self._body(request)
        start = time.perf_counter()
        reply = self._call("POST", path, body, timeout=self.settings.timeout_s)
        elapsed = time.perf_counter() - start
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] if self.prompt_kind == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"the server at {self.base_url} sent an unexpected reply: {str(reply)[:200]}") from exc
        usage = reply.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") or (reply.get("timings") or {}).get("cache_n") or 0
        return Completion(text=text or "", prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), logprob=None,
                          cached_tokens=int(cached), finish_reason=choice.get("finish_reason") or "stop",
                          prompt_s=0.0, decode_s=elapsed)

    def generate_many(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        """Send all requests at once (up to `parallel` in flight); yield completions in request order."""
        futures = [self._pool.submit(self.generate, request) for request in requests]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    # choices (engine.llm.judge) -----------------------------------------------------------------
    TOP_LOGPROBS = 20

    def choice_logprobs(self, prompt: Prompt, options: Sequence[str]) -> "ChoiceScores":
        """The options' log-probabilities as the first answer token, from the server's `logprobs`.

        One token is asked for, greedy and unconstrained, with the top 20 alternatives: servers report
        log-probabilities before any grammar, so a grammar would add nothing. An option missing from the
        top 20 gets the smallest reported log-probability (an upper bound on its own), and the result is
        normalised over the options.
        """
        from engine.llm.judge import ChoiceScores

        body: dict[str, Any] = {"model": self.server_model, "max_tokens": 1, "temperature": 0.0, "seed": 0,
                                "stream": False}
        if self.prompt_kind == "chat":
            path = "/v1/chat/completions"
            body.update(messages=prompt.messages(), logprobs=True, top_logprobs=self.TOP_LOGPROBS)
        else:
            path = "/v1/completions"
            body.update(prompt=prompt.completion_text(), logprobs=self.TOP_LOGPROBS)
        start = time.perf_counter()
        reply = self._call("POST", path, body, timeout=self.settings.timeout_s)
        seconds = time.perf_counter() - start
        top = _first_top_logprobs(reply)
        if not top:
            raise ModelError(f"the server at {self.base_url} returned no logprobs; the judge needs a server "
                             "that reports them (llama-server, llama-cpp-python's server with logits_all, vLLM)")
        best: dict[str, float] = {}
        for token, logprob in top:
            word = token.strip()
            if word in options:
                best[word] = _logaddexp(best[word], logprob) if word in best else float(logprob)
        floor = min(lp for _, lp in top)
        raw = [best.get(option, floor) for option in options]
        total = _logaddexp(*raw)
        scores = [s - total for s in raw]
        usage = reply.get("usage") or {}
        return ChoiceScores(tuple(float(s) for s in scores), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                            seconds=seconds)

    def stream(self, source: RequestSource, *, should_stop: Callable[[], bool] | None = None
               ) -> Iterator[tuple[Any, Completion]]:
        """Rounds of `parallel` concurrent requests (the server batches them in its own slots)."""
        return stream_in_rounds(self.generate_many, source, size=self.settings.parallel, should_stop=should_stop)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "OpenAIServerBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
