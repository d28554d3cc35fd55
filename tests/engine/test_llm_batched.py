"""Real batched llama.cpp inference with the Gemma 3 270M test model: several sequences in one batch
under the grammar, a stream cancelled mid-way, what a seed guarantees, and runs on the batched path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.errors import Cancelled
from engine.generate import GenerationParams, create_run, run_generation, run_status
from engine.jobs import CancelToken
from engine.llm.backends import GenerationRequest, Prompt, open_backend
from engine.llm.constrain import parse_phrase_list, phrase_list_grammar
from engine.store.project import Project
from tests.conftest import REPO
from tests.engine.llm_support import gemma_path, gemma_settings  # noqa: F401

pytestmark = pytest.mark.slow

SYSTEM = "Short descriptions of business activities, as written on survey forms."
CARDS = {"10.71": "Code 10.71: Manufacture of bread; manufacture of fresh pastry goods and cakes\n"
                  "This code includes:\n- manufacture of bakery products: bread and rolls",
         "11.05": "Code 11.05: Manufacture of beer\nThis code includes:\n- manufacture of malt liquors"}
TASKS = ["bread and rolls", "cakes", "pastry", "beer", "ale", "stout"]
GRAMMAR = phrase_list_grammar(items=3, max_words=4, max_word_chars=12)
PARAMS = GenerationParams(per_request=3, max_words=6)


def _requests(seed: int = 0) -> list[GenerationRequest]:
    """Six requests over two code cards (so the shared prefix changes mid-stream)."""
    out = []
    for i, task in enumerate(TASKS):
        card = CARDS["10.71"] if i < 3 else CARDS["11.05"]
        prompt = Prompt(SYSTEM, card, f"Write 3 short texts about: {task}", "Answer (JSON list of 3 short texts): ")
        out.append(GenerationRequest(prompt=prompt, seed=seed + i, max_tokens=48, grammar=GRAMMAR))
    return out


@pytest.fixture(scope="module")
def batched(gemma_path):
    with open_backend(gemma_settings(gemma_path, parallel=4)) as loaded:
        yield loaded


def test_several_sequences_in_one_batch_all_parse_under_the_grammar(batched):
    before = batched.batch_counters()
    done = list(batched.generate_many(_requests()))
    after = batched.batch_counters()
    assert len(done) == 6
    for completion in done:
        value = json.loads(completion.text)
        assert isinstance(value, list) and len(value) == 3 and parse_phrase_list(completion.text).ok
        assert completion.finish_reason == "stop" and completion.logprob < 0
        assert 0 < completion.completion_tokens <= 48 and completion.prompt_tokens > 30
    # The requests really shared batches: fewer llama_decode calls than tokens evaluated one by one.
    steps = after["steps"] - before["steps"]
    tokens = after["evaluated_tokens"] - before["evaluated_tokens"]
    assert steps < sum(c.completion_tokens for c in done) and tokens / steps > 2
    # Each card was evaluated once and copied to the other requests of its code.
    assert [c.cached_tokens > 30 for c in done] == [False, True, True, False, True, True]
    assert 5 < done[3].cached_tokens < 30 and done[0].cached_tokens in (0, done[3].cached_tokens)


def test_a_stream_cancelled_mid_way_stops_within_one_step_and_frees_its_slots(batched):
    requests = iter(enumerate(_requests(seed=40)))
    asked = []

    def should_stop() -> bool:
        asked.append(batched.batch_counters()["steps"])
        return len(asked) > 3  # let three decoding steps run, then cancel

    stream = batched.stream(lambda: next(requests, None), should_stop=should_stop)
    with pytest.raises(Cancelled):
        list(stream)
    # No llama_decode ran after the step that saw the cancel request.
    assert batched.batch_counters()["steps"] == asked[-1]
    assert asked[-1] - asked[0] == 3
    # Every slot was freed: a full batch still fits and answers afterwards.
    assert all(parse_phrase_list(c.text).ok for c in batched.generate_many(_requests(seed=50)))


def test_same_seed_same_parallel_same_order_gives_the_same_texts(batched, gemma_path):
    """What a seed guarantees on the batched path (see engine/llm/batched.py): the same requests in the
    same order with the same `parallel`, model and machine give the same texts, with the prefix warm
    or cold, in the same backend or a fresh one."""
    first = [c.text for c in batched.generate_many(_requests(seed=7))]
    again = [c.text for c in batched.generate_many(_requests(seed=7))]
    with open_backend(gemma_settings(gemma_path, parallel=4)) as fresh:
        fresh_texts = [c.text for c in fresh.generate_many(_requests(seed=7))]
    assert first == again == fresh_texts
    other_seed = [c.text for c in batched.generate_many(_requests(seed=8))]
    assert other_seed != first


def _samples(project, run_id):
    return project.conn.execute(
        "SELECT code, strategy, text, unit, seed FROM samples WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()


def _check_run(project, run_id, quota, codes):
    status = run_status(project, run_id)
    assert status.status == "done" and status.per_code == dict.fromkeys(codes, quota)
    rows = _samples(project, run_id)
    assert len(rows) == quota * len(codes)
    assert len({(r[0], r[2].casefold()) for r in rows}) == len(rows)   # no duplicate text within a code
    units = {r[0] for r in project.conn.execute("SELECT unit FROM generation_units WHERE run_id = ?", (run_id,))}
    assert {r[3] for r in rows} <= units
    assert all(r[2].strip() and len(r[2].split()) <= PARAMS.max_words + 4 for r in rows)
    return rows


def test_batched_and_one_at_a_time_runs_both_reach_the_quota_with_valid_samples(nace_project, gemma_path,
                                                                                tmp_path):
    codes = ["10.71", "11.05"]
    definition = dict(codes=codes, quota=6, seed=3, model=str(gemma_path), strategies=["keywords", "notes"],
                      params=PARAMS)
    twin_path = tmp_path / "twin.statcoder"
    shutil.copy(nace_project.path, twin_path)
    single = create_run(nace_project, backend=gemma_settings(gemma_path), **definition)
    batched_run = create_run(nace_project, backend=gemma_settings(gemma_path, parallel=3), **definition)
    one = run_generation(nace_project, single)
    many = run_generation(nace_project, batched_run)
    assert (one.parallel, many.parallel) == (1, 3)
    _check_run(nace_project, single, 6, codes)
    rows = _check_run(nace_project, batched_run, 6, codes)
    assert many.cached_tokens > 0 and many.parse_failures == 0
    # Uninterrupted, the same run definition gives the same samples again.
    with Project.open(twin_path) as twin:
        twin_run = create_run(twin, backend=gemma_settings(gemma_path, parallel=3), **definition)
        run_generation(twin, twin_run)
        assert [r[:3] for r in _samples(twin, twin_run)] == [r[:3] for r in rows]


def test_batched_run_cancelled_mid_way_resumes_to_the_exact_quota(nace_project, gemma_path):
    codes = ["10.71", "10.72", "11.05"]
    run_id = create_run(nace_project, codes=codes, quota=5, seed=5, model=str(gemma_path),
                        backend=gemma_settings(gemma_path, parallel=4), strategies=["grid", "notes"], params=PARAMS)
    token = CancelToken()

    def cancel_after_some(info):
        if info.done >= 4:
            token.cancel()

    with pytest.raises(Cancelled):
        run_generation(nace_project, run_id, progress=cancel_after_some, cancel=token)
    mid = run_status(nace_project, run_id)
    assert mid.status == "cancelled" and 4 <= mid.done < 15
    result = run_generation(nace_project, run_id)
    assert result.status == "done" and result.parallel == 4
    _check_run(nace_project, run_id, 5, codes)


def test_kill_9_during_a_batched_run_resumes_to_the_exact_quota(nace_project, gemma_path):
    codes = ["10.71", "11.02"]
    run_id = create_run(nace_project, codes=codes, quota=6, seed=9, model=str(gemma_path),
                        backend=gemma_settings(gemma_path, parallel=4), strategies=["keywords", "notes"],
                        params=PARAMS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "engine", "generate", "run", "-p", str(nace_project.path),
                              str(run_id), "--quiet"], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = nace_project.conn.execute("SELECT COUNT(*) FROM generation_units WHERE run_id = ?",
                                             (run_id,)).fetchone()[0]
            if done >= 1 or child.poll() is not None:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    before = run_status(nace_project, run_id)
    # its runner is dead (the lease names a dead pid): interrupted, not running
    assert before.status == "interrupted" and 0 < before.done < 12
    run_generation(nace_project, run_id)
    _check_run(nace_project, run_id, 6, codes)


def test_choice_scores_between_batched_streams_match_a_fresh_backend(batched, gemma_path):
    """The judge's one-sequence call and the batched decoder share one KV cache: neither may see the
    other's leftovers."""
    prompt = Prompt(SYSTEM, CARDS["10.71"], "Is bread made here? Answer A (yes) or B (no).", "Answer: ")
    list(batched.generate_many(_requests(seed=60)))
    warm = batched.choice_logprobs(prompt, ["A", "B"])
    texts = [c.text for c in batched.generate_many(_requests(seed=7))]
    with open_backend(gemma_settings(gemma_path, parallel=4)) as fresh:
        cold = fresh.choice_logprobs(prompt, ["A", "B"])
        assert [c.text for c in fresh.generate_many(_requests(seed=7))] == texts
    assert warm.logprobs == pytest.approx(cold.logprobs, abs=1e-4)


def test_the_memory_estimate_counts_the_kv_cells_llama_cpp_really_allocates(batched, gemma_path):
    import llama_cpp

    from engine.llm.backends import kv_cells
    from engine.llm.registry import estimate_memory, inspect_model

    hardware = batched.settings.hardware
    assert llama_cpp.llama_n_ctx(batched.llm._ctx.ctx) == kv_cells(hardware) > hardware.n_ctx
    info = inspect_model(gemma_path)
    one = estimate_memory(info, n_ctx=hardware.n_ctx)
    four = estimate_memory(info, n_ctx=hardware.n_ctx, parallel=hardware.parallel)
    assert four.kv_cache_bytes * hardware.n_ctx == one.kv_cache_bytes * kv_cells(hardware)


def test_going_back_to_an_earlier_code_reuses_its_card_from_the_kv_cache(batched):
    """A run fills free slots from the next code and comes back to a code whose requests fell short:
    the earlier card must still be cached, not evaluated again."""
    requests = _requests(seed=70)
    a1, b1, a2 = requests[0], requests[3], requests[1]
    batched.reset_cache()
    done = list(batched.generate_many([a1, b1, a2]))
    assert done[0].cached_tokens == 0 and 5 < done[1].cached_tokens < 30   # new cards: b1 reuses the system text
    assert done[2].cached_tokens > 30    # a2: the whole system text and card of a1's code, still cached


def test_summed_request_seconds_include_the_shared_prefix_evaluations(batched, monkeypatch):
    """A run's seconds are the sum of its requests' prompt_s + decode_s. Evaluating a code's card is
    shared by its requests and must still be counted once, or a batched run reports about 40 % less
    time than it took (found on the 24-per-class NACE run: 7,969 s summed against ~14,200 s wall)."""
    from engine.llm.batched import BatchedDecoder

    evaluated = []
    real = BatchedDecoder._eval_prefix

    def slow(self, tokens, start, end, seq):
        evaluated.append(end - start)
        time.sleep(0.25)
        return real(self, tokens, start, end, seq)

    monkeypatch.setattr(BatchedDecoder, "_eval_prefix", slow)
    batched.reset_cache()
    began = time.perf_counter()
    done = list(batched.generate_many(_requests(seed=90)))
    wall = time.perf_counter() - began
    assert len(evaluated) >= 2       # at least the system text and one card were evaluated afresh
    summed = sum(c.prompt_s + c.decode_s for c in done)
    assert summed >= 0.25 * len(evaluated)
    assert 0.9 * wall <= summed <= 1.05 * wall
