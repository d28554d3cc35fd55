"""Generation runs: define, plan, cancel and inspect (running them: execute.py). Every sample is written as it arrives.

A run is a list of codes, strategies, a model and backend, parameters and a per-code quota. Its work
is a deterministic sequence of units (one request each: code, strategy, index). A unit's samples and
its own record are written in one transaction, so a run killed at any moment resumes where it stopped
and ends with exactly `quota` accepted samples per code: no duplicates, no gaps.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.changes import Changes
from engine.classification import get_code
from engine.errors import Cancelled, ModelError, StatcoderError, with_hint
from engine.llm.backends import BackendSettings, GenerationRequest, HardwareSettings
from engine.llm.constrain import parse_phrase_list, phrase_list_grammar, phrase_list_schema
from engine.store.project import Project
from engine.realdata.importing import real_texts
from engine.text import normalise_key
from engine.generate.cards import code_card
from engine.generate.prompts import DEFAULT_GRID, STRATEGY_VERSIONS, SYSTEM_VERSION, build_prompt
from engine.generate.strategies import EXAMPLE_STRATEGIES, STRATEGIES, StrategyContext, applies, grid_cells, shares

log = logging.getLogger(__name__)

# The reason a paused run's cancel token carries: the run stops like a cancelled one, but is listed as
# "paused" (it was meant to resume), not "cancelled".
PAUSED = "paused"
# generation_runs.cancel_requested: 1 asks another process's run to stop as cancelled, 2 as paused.
CANCEL_REQUEST, PAUSE_REQUEST = 1, 2


@dataclass(frozen=True)
class GenerationParams:
    """How requests are made. `per_request` phrases per request; `weights` split a code's quota
    between strategies (default equal); `max_units_factor` bounds retries when a strategy keeps
    producing duplicates or unparseable output."""

    per_request: int = 6
    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    language: str = "English"
    grid: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_GRID))
    weights: dict[str, float] = field(default_factory=dict)
    few_shot_k: int = 4
    min_words: int = 1
    max_words: int = 8
    max_units_factor: float = 3.0
    # In-context examples per strategy and code, chosen before the run by a higher stage and stored
    # with it (provenance): "progen" -> round-1 samples a notes-trained coder found most helpful
    # (engine.curate.feedback), "retrieved" -> real-train or uncoded texts near the code's notes
    # (engine.coders.embedding.retrieval; never test-split texts). `examples_k` are shown per request.
    examples: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    examples_k: int = 4
    # Diversity control (Chung et al. 2023, logit suppression): a word already used in at least
    # `suppress_min_count` of a code's accepted samples gets its logit lowered by `suppress_penalty` in
    # the code's later requests (the `suppress_max_words` most used). 0 = off. In-process llama.cpp only.
    suppress_penalty: float = 0.0
    suppress_min_count: int = 3
    suppress_max_words: int = 20

    @property
    def request_max_tokens(self) -> int:
        return self.max_tokens or self.per_request * (self.max_words * 3 + 4) + 8

    def sampling(self) -> dict[str, Any]:
        out = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k, "min_p": self.min_p,
               "max_tokens": self.request_max_tokens}
        if self.suppress_penalty > 0:
            out.update(suppress_penalty=self.suppress_penalty, suppress_min_count=self.suppress_min_count,
                       suppress_max_words=self.suppress_max_words)
        return out

    def overused(self, counts: Counter) -> tuple[tuple[str, float], ...]:
        """(word, penalty) for the words of a code's accepted samples that diversity control suppresses."""
        if self.suppress_penalty <= 0:
            return ()
        words = sorted((w for w, n in counts.items() if n >= self.suppress_min_count and w not in FUNCTION_WORDS),
                       key=lambda w: (-counts[w], w))[: self.suppress_max_words]
        return tuple((w, self.suppress_penalty) for w in words)


@dataclass
class RunStatus:
    """Where a run stands, from the project file alone (works while another process runs it)."""

    run_id: int
    name: str
    status: str
    codes: list[str]
    strategies: list[str]
    quota: int
    seed: int
    model_name: str
    model_sha256: str
    backend: str
    device: str | None
    total: int
    done: int
    per_code: dict[str, int]
    per_strategy: dict[str, int]
    units: int
    parse_failures: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    seconds: float
    error: str | None
    created: str
    finished: str | None
    owner: str | None = None      # the live runner of a 'running' run ('interrupted': its runner died)

    @property
    def shortfall(self) -> dict[str, int]:
        return {c: self.quota - n for c, n in self.per_code.items() if n < self.quota}


@dataclass
class RunResult:
    """What one call of run_generation did, and the run's state after it."""

    run_id: int
    status: str
    samples: int
    written: int
    units: int
    parse_failures: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    seconds: float
    device: str
    shortfall: dict[str, int]
    parallel: int = 1
    # Samples stored with their request's logprob (scored per request by SuperGen): their phrase was not
    # found in the reply text as written (the parser tidied it).
    logprob_fallbacks: int = 0

    @property
    def samples_per_s(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    @property
    def changes(self) -> Changes:
        return Changes(runs=True, samples=True)


def create_run(project: Project, *, codes: list[str], quota: int, strategies: list[str] | None = None,
               seed: int = 0, model: str | None = None, backend: BackendSettings | None = None,
               params: GenerationParams | None = None, name: str | None = None) -> int:
    """Define a run and return its id. Nothing is generated yet.

    `model`: a registered model's name or sha256, or a GGUF path (registered on the way); None takes
    the registry's default. Ignored for a server backend, which names its own model.
    """
    from engine.llm.registry import add_model, get_default_model, get_model

    if quota < 1:
        raise StatcoderError("the quota must be at least 1 sample per code")
    if not codes:
        raise StatcoderError("a run needs at least one code")
    for code in codes:
        get_code(project, code)
    chosen = list(strategies or ("contrastive", "nec", "keywords", "grid", "notes"))
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        raise StatcoderError(f"unknown strategy '{unknown[0]}'; choose from {', '.join(STRATEGIES)}")
    settings = backend or BackendSettings()
    params = params or GenerationParams()
    for strategy in EXAMPLE_STRATEGIES:
        if strategy in chosen and not any(params.examples.get(strategy, {}).get(c) for c in codes):
            raise with_hint(StatcoderError(f"the '{strategy}' strategy needs examples chosen before the run; "
                                           "none were given for these codes"), "examples", strategy)
    if settings.kind == "openai":
        model_name, sha = settings.server_model, f"server:{settings.server_model}"
    else:
        if model is None:
            info = get_default_model() if not settings.model_path else add_model(settings.model_path)
            if info is None:
                raise with_hint(ModelError("no LLM is registered to generate with"), "add_llm")
        elif "/" in model or model.endswith(".gguf"):
            info = add_model(model)
        else:
            info = get_model(model)
        settings = BackendSettings(**{**asdict(settings), "hardware": settings.hardware, "model_path": info.path})
        model_name, sha = info.name, info.sha256
    stored = {"generation": asdict(params), "backend": settings.to_dict()}
    with project.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO generation_runs (name, model_name, model_sha256, backend, strategies, codes, quota, seed,"
            " params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name or f"{len(codes)} codes x {quota}", model_name, sha, settings.kind, json.dumps(chosen),
             json.dumps(codes), quota, seed, json.dumps(stored)))
        return int(cur.lastrowid)


def _run_row(project: Project, run_id: int) -> dict[str, Any]:
    cur = project.conn.execute("SELECT * FROM generation_runs WHERE id = ?", (run_id,))
    row = cur.fetchone()
    if row is None:
        raise StatcoderError(f"there is no generation run {run_id} in this project")
    return dict(zip([d[0] for d in cur.description], row))


def run_settings(project: Project, run_id: int) -> tuple[BackendSettings, GenerationParams]:
    stored = json.loads(_run_row(project, run_id)["params"])
    backend = dict(stored["backend"])
    backend["hardware"] = HardwareSettings(**backend.get("hardware", {}))
    return BackendSettings(**backend), GenerationParams(**stored["generation"])


def run_status(project: Project, run_id: int) -> RunStatus:
    """The run's definition and progress, read from the project file."""
    row = _run_row(project, run_id)
    codes = json.loads(row["codes"])
    conn = project.conn
    per_code = dict.fromkeys(codes, 0)
    for code, n in conn.execute("SELECT code, COUNT(*) FROM samples WHERE run_id = ? GROUP BY code", (run_id,)):
        per_code[code] = n
    per_strategy = dict(conn.execute(
        "SELECT strategy, COUNT(*) FROM samples WHERE run_id = ? GROUP BY strategy", (run_id,)).fetchall())
    units = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(1 - parse_ok), 0), COALESCE(SUM(prompt_tokens), 0),"
        " COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(seconds), 0)"
        " FROM generation_units WHERE run_id = ?", (run_id,)).fetchone()
    status = row["status"]
    owner = None
    if status == "running":
        from engine.generate.lease import Lease, is_stale

        held = Lease(row.get("lease_owner"), row.get("lease_pid"), row.get("lease_host"), row.get("lease_heartbeat"))
        if is_stale(held):
            status = "interrupted"   # its runner died (killed, crashed): `generate run` resumes it
        else:
            owner = held.describe()
    return RunStatus(
        run_id=run_id, name=row["name"], status=status, owner=owner, codes=codes, strategies=json.loads(row["strategies"]),
        quota=row["quota"], seed=row["seed"], model_name=row["model_name"] or "", model_sha256=row["model_sha256"] or "",
        backend=row["backend"] or "", device=row["device"], total=row["quota"] * len(codes),
        done=sum(per_code.values()), per_code=per_code, per_strategy=per_strategy, units=units[0],
        parse_failures=units[1], prompt_tokens=units[2], cached_tokens=units[3], completion_tokens=units[4],
        seconds=units[5], error=row["error"], created=row["created"], finished=row["finished"])


def list_runs(project: Project) -> list[RunStatus]:
    return [run_status(project, r[0]) for r in project.conn.execute("SELECT id FROM generation_runs ORDER BY id")]


def cancel_run(project: Project, run_id: int, *, pause: bool = False) -> None:
    """Ask a run to stop (works from another process, e.g. the CLI): a batched run within one decoding
    step, dropping the requests in flight; a one-at-a-time run within one token.

    With `pause` it is listed as "paused" afterwards instead of "cancelled"; either way it resumes.
    """
    _run_row(project, run_id)
    project.conn.execute("UPDATE generation_runs SET cancel_requested = ? WHERE id = ?",
                         (PAUSE_REQUEST if pause else CANCEL_REQUEST, run_id))


def is_pause(exc: BaseException) -> bool:
    """Whether a Cancelled came from a pause (the GUI's Pause button, `cancel_run(pause=True)`)."""
    return isinstance(exc, Cancelled) and str(exc) == PAUSED


def _set_status(project: Project, run_id: int, status: str, *, error: str | None = None,
                device: str | None = None) -> None:
    # A paused run is not finished: it is meant to be resumed.
    finished = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')" if status in ("done", "failed", "cancelled") else "NULL"
    project.conn.execute(
        f"UPDATE generation_runs SET status = ?, error = ?, device = COALESCE(?, device), finished = {finished}"
        " WHERE id = ?", (status, error, device, run_id))


def run_context(project: Project, code: str, params: GenerationParams, strategies: list[str],
                seed: int) -> StrategyContext:
    examples = [t for t, _ in real_texts(project, "train", [code])] if "few-shot" in strategies else []
    return StrategyContext(items=params.per_request, language=params.language,
                           grid_cells=grid_cells(params.grid, seed) if params.grid else [],
                           few_shot_k=params.few_shot_k, train_examples=examples,
                           examples={s: list(by_code.get(code, [])) for s, by_code in params.examples.items()},
                           examples_k=params.examples_k)


def plan_for_code(project: Project, code: str, strategies: list[str], quota: int, params: GenerationParams,
                  seed: int):
    """(card, context, [(strategy, share)]) for a code; the last strategy tops up any shortfall."""
    card = code_card(project, code)
    ctx = run_context(project, code, params, strategies, seed)
    usable = [s for s in STRATEGIES if s in strategies and applies(s, card, ctx)] or ["notes"]
    split = shares(quota, usable, params.weights)
    return card, ctx, [(s, split[s]) for s in usable]


def max_units(target: int, params: GenerationParams) -> int:
    return math.ceil(target / params.per_request * params.max_units_factor) + 2


def grammar_for(params: GenerationParams, constraint: str) -> tuple[str | None, dict | None]:
    if constraint == "json_schema":
        return None, phrase_list_schema(items=params.per_request)
    return phrase_list_grammar(items=params.per_request, min_words=params.min_words,
                               max_words=params.max_words), None


def make_request(card, task, *, params: GenerationParams, classification: str, kind: str, seed: int,
                 grammar: str | None, schema: dict | None,
                 suppress: tuple[tuple[str, float], ...] = ()) -> GenerationRequest:
    prompt = build_prompt(card, task, classification=classification, items=params.per_request, kind=kind)
    return GenerationRequest(prompt=prompt, seed=seed, max_tokens=params.request_max_tokens,
                             temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                             min_p=params.min_p, grammar=grammar, json_schema=schema, suppress=suppress)


# Never suppressed: words every phrase needs, whatever the code.
FUNCTION_WORDS = frozenset("a an the of and or for in on to by with from at as other not".split())
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


def phrase_words(text: str) -> set[str]:
    """The words diversity control counts in a phrase: lower case, letters only, 3 characters or more."""
    return set(_WORD.findall(text.casefold()))


def prompt_version(strategy: str) -> str:
    return f"{SYSTEM_VERSION}/{STRATEGY_VERSIONS[strategy]}"


def parse_output(text: str, params: GenerationParams):
    return parse_phrase_list(text, max_words=params.max_words + 4)


def key_of(text: str) -> str:
    return normalise_key(text)
