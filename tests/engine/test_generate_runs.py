"""Generation runs with a scripted backend: quotas, provenance, parse failures, cancel, few-shot sources."""

from __future__ import annotations

import json

import pytest

from engine.errors import Cancelled, StatcoderError
from engine.generate import GenerationParams, cancel_run, create_run, run_generation, run_status
from engine.classification import leaf_codes_under
from engine.generate.cards import code_card, keywords_of, note_items
from engine.generate.runs import plan_for_code
from engine.generate.strategies import grid_cells, shares
from engine.jobs import CancelToken
from tests.engine.llm_support import SCRIPTED, ScriptedBackend


def test_note_items_join_sub_items_to_their_parent():
    text = ("This class includes:\n- manufacture of bakery products:\n  . bread and rolls\n"
            "  . pastry, cakes, pies\n- manufacture of rusks")
    assert note_items(text) == ["manufacture of bakery products: bread and rolls",
                                "manufacture of bakery products: pastry, cakes, pies", "manufacture of rusks"]
    assert keywords_of(["Manufacture of bread and rolls", "bread, cakes"]) == ["bread", "rolls", "cakes"]


def test_shares_split_the_quota_exactly():
    assert shares(24, ["a", "b", "c", "d", "e"], {}) == {"a": 5, "b": 5, "c": 5, "d": 5, "e": 4}
    assert shares(7, ["a", "b"], {"a": 3.0}) == {"a": 5, "b": 2}
    assert grid_cells({"x": ["1", "2"], "y": ["a", "b"]}, 1) == grid_cells({"x": ["1", "2"], "y": ["a", "b"]}, 1)
    assert len(grid_cells({"x": ["1", "2"], "y": ["a", "b"]}, 1)) == 4


def test_code_card_has_siblings_excludes_and_incoming_links(nace_project):
    card = code_card(nace_project, "10.89")
    assert card.is_residual
    assert ("10.81", "Manufacture of sugar") in card.siblings
    assert any(where.startswith("10.39") for _, where in card.excluded)
    assert ("manufacture of soup containing meat", "10.13") in [(t, s) for t, s, _ in card.incoming]
    assert not code_card(nace_project, "10.71").is_residual
    assert leaf_codes_under(nace_project, ["11"]) == ["11.01", "11.02", "11.03", "11.04", "11.05", "11.06", "11.07"]


def test_run_reaches_the_quota_with_provenance_and_dedup(nace_project):
    answers = iter(range(10_000))

    def answer(request):  # every other phrase repeats, so dedup has work to do
        n = next(answers)
        return json.dumps([f"phrase {n}", "always the same", f"other {n}", "always the same", f"x {n}", "y"])

    run_id = create_run(nace_project, codes=["10.71", "10.89"], quota=9, seed=5, backend=SCRIPTED,
                        strategies=["contrastive", "nec", "notes"])
    reports = []
    result = run_generation(nace_project, run_id, backend=ScriptedBackend(answer), progress=reports.append)
    status = run_status(nace_project, run_id)
    assert status.status == "done" and status.per_code == {"10.71": 9, "10.89": 9} and not result.shortfall
    assert result.written == 18 and reports[-1].done == 18 and "samples_per_s" in reports[-1].rates
    rows = nace_project.conn.execute(
        "SELECT code, strategy, text_key, unit, prompt_version, prompt_hash, condition, seed, model_sha256,"
        " backend, params, prompt_tokens, completion_tokens FROM samples WHERE run_id = ?", (run_id,)).fetchall()
    assert len({(r[0], r[2]) for r in rows}) == 18  # no duplicate text within a code
    assert {r[1] for r in rows if r[0] == "10.71"} == {"notes"}  # 10.71: no incoming links, not residual
    assert {r[1] for r in rows if r[0] == "10.89"} == {"contrastive", "nec", "notes"}
    for row in rows:
        assert row[3].startswith(row[0] + "|" + row[1] + "|")
        assert row[4].startswith("sys-") and len(row[5]) == 16 and json.loads(row[6])
        assert row[8] == "server:scripted" and row[9] == "openai (cpu)"
        assert json.loads(row[10])["temperature"] == 0.8 and row[11] == 100 and row[12] == 20


def test_unparseable_output_is_counted_logged_and_never_crashes(nace_project, caplog):
    def answer(request):
        return "I am sorry, I cannot" if request.seed % 2 else '["good one", "bad'

    run_id = create_run(nace_project, codes=["10.71"], quota=30, seed=1, backend=SCRIPTED, strategies=["notes"],
                        params=GenerationParams(per_request=3, max_units_factor=1.0))
    result = run_generation(nace_project, run_id, backend=ScriptedBackend(answer))
    status = run_status(nace_project, run_id)
    assert status.parse_failures == status.units == result.units > 0
    assert result.shortfall == {"10.71": 30 - status.done} and status.done <= 1
    raw = nace_project.conn.execute("SELECT raw_output FROM generation_units WHERE parse_ok = 0").fetchall()
    assert len(raw) == status.units and all(r[0] for r in raw)
    assert "did not parse" in caplog.text


def test_cancel_stops_between_requests_and_resume_finishes(nace_project):
    token = CancelToken()

    def stop_after_first(info):
        if info.done >= 3:
            token.cancel()

    run_id = create_run(nace_project, codes=["10.71", "10.72"], quota=6, seed=2, backend=SCRIPTED,
                        strategies=["notes"], params=GenerationParams(per_request=3))
    with pytest.raises(Cancelled):
        run_generation(nace_project, run_id, backend=ScriptedBackend(), progress=stop_after_first, cancel=token)
    mid = run_status(nace_project, run_id)
    assert mid.status == "cancelled" and 3 <= mid.done < 12
    cancel_run(nace_project, run_id)  # a stale request from another process is cleared by the next run
    run_generation(nace_project, run_id, backend=ScriptedBackend())
    assert run_status(nace_project, run_id).per_code == {"10.71": 6, "10.72": 6}


def test_few_shot_prompts_use_only_real_train_texts(nace_project):
    backend = ScriptedBackend()
    run_id = create_run(nace_project, codes=["10.71"], quota=12, seed=3, backend=SCRIPTED, strategies=["few-shot"])
    run_generation(nace_project, run_id, backend=backend)
    prompts = "\n".join(r.prompt.task for r in backend.requests)
    split = dict(nace_project.conn.execute("SELECT text, split FROM real_texts WHERE code = '10.71'").fetchall())
    shown = [t for t in split if f"- {t}\n" in prompts + "\n"]
    assert shown and all(split[t] == "train" for t in shown)
    assert not any(f"- {t}\n" in prompts + "\n" for t, s in split.items() if s == "test")


def test_run_definition_errors(nace_project):
    with pytest.raises(StatcoderError, match="unknown code"):
        create_run(nace_project, codes=["99.99"], quota=3, backend=SCRIPTED)
    with pytest.raises(StatcoderError, match="unknown strategy"):
        create_run(nace_project, codes=["10.71"], quota=3, backend=SCRIPTED, strategies=["magic"])
    with pytest.raises(StatcoderError, match="no generation run"):
        run_status(nace_project, 42)


def three_phrases(request):
    return json.dumps([f"phrase {request.seed} {i}" for i in range(3)])


def test_pause_stops_after_the_request_in_flight_and_lists_the_run_as_paused(nace_project):
    """Pause pressed while the run's last request is in flight: the run stops there, listed as paused."""
    from engine.generate import PAUSED

    token = CancelToken()
    backend = ScriptedBackend(three_phrases)
    answer = backend.answer

    def pause_during_request(request):
        if len(backend.requests) == 3:  # the third request of four is running when Pause is pressed
            token.cancel(PAUSED)
        return answer(request)

    backend.answer = pause_during_request
    run_id = create_run(nace_project, codes=["10.71", "10.72"], quota=6, seed=2, backend=SCRIPTED,
                        strategies=["notes"], params=GenerationParams(per_request=3))
    with pytest.raises(Cancelled, match="paused"):
        run_generation(nace_project, run_id, backend=backend, cancel=token)
    assert len(backend.requests) == 3, "no request may start after Pause"
    paused = run_status(nace_project, run_id)
    assert paused.status == "paused" and paused.finished is None and paused.done == 9
    run_generation(nace_project, run_id, backend=ScriptedBackend())
    assert run_status(nace_project, run_id).status == "done"


def test_pause_from_another_process_lists_the_run_as_paused(nace_project):
    backend = ScriptedBackend(three_phrases)
    answer = backend.answer
    run_id = create_run(nace_project, codes=["10.71"], quota=6, seed=2, backend=SCRIPTED, strategies=["notes"],
                        params=GenerationParams(per_request=3))

    def pause_from_cli(request):
        cancel_run(nace_project, run_id, pause=True)   # as `statcoder generate pause` does
        return answer(request)

    backend.answer = pause_from_cli
    with pytest.raises(Cancelled):
        run_generation(nace_project, run_id, backend=backend)
    assert run_status(nace_project, run_id).status == "paused"


def test_pausing_the_last_request_of_a_run_does_not_finish_it(nace_project):
    """The issue's case: Pause pressed while the request that would reach the quota runs."""
    from engine.generate import PAUSED

    token = CancelToken()
    backend = ScriptedBackend(three_phrases)
    answer = backend.answer

    def pause_last(request):
        if len(backend.requests) == 2:
            token.cancel(PAUSED)
        return answer(request)

    backend.answer = pause_last
    run_id = create_run(nace_project, codes=["10.71"], quota=6, seed=2, backend=SCRIPTED, strategies=["notes"],
                        params=GenerationParams(per_request=3))
    with pytest.raises(Cancelled):
        run_generation(nace_project, run_id, backend=backend, cancel=token)
    assert run_status(nace_project, run_id).status == "paused"


class _ConcurrentScripted(ScriptedBackend):
    """Keeps `parallel` requests in flight and finishes them out of order (the newest first), like a
    batched backend where short answers finish before long ones."""

    def __init__(self, answer, parallel: int):
        super().__init__(answer)
        self.parallel = parallel
        self.most_in_flight = 0

    def stream(self, source, *, should_stop=None):
        flight = []
        while True:
            while len(flight) < self.parallel:
                item = source()
                if item is None:
                    break
                flight.append(item)
            self.most_in_flight = max(self.most_in_flight, len(flight))
            if not flight:
                return
            if should_stop is not None:
                should_stop()
            key, request = flight.pop()
            yield key, self.generate(request)


@pytest.mark.parametrize("parallel", [3, 8])
def test_many_units_in_flight_still_end_at_exactly_the_quota_without_duplicates(nace_project, parallel):
    answers = iter(range(10_000))

    def answer(request):  # short and repetitive answers: strategies fall short and others top up
        n = next(answers)
        return json.dumps([f"phrase {n % 7}", "always the same", f"other {n}"])

    codes = ["10.71", "10.89", "11.05"]
    run_id = create_run(nace_project, codes=codes, quota=10, seed=5, backend=SCRIPTED,
                        strategies=["contrastive", "nec", "keywords", "grid", "notes"],
                        params=GenerationParams(per_request=3))
    backend = _ConcurrentScripted(answer, parallel)
    result = run_generation(nace_project, run_id, backend=backend)
    assert backend.most_in_flight == parallel and result.parallel == parallel
    assert run_status(nace_project, run_id).per_code == dict.fromkeys(codes, 10)
    rows = nace_project.conn.execute("SELECT code, text_key, unit FROM samples WHERE run_id = ?", (run_id,)).fetchall()
    assert len(rows) == 30 and len({(c, k) for c, k, _ in rows}) == 30
    units = [u for (u,) in nace_project.conn.execute("SELECT unit FROM generation_units WHERE run_id = ?", (run_id,))]
    assert len(units) == len(set(units))


@pytest.mark.parametrize("parallel", [1, 8])
def test_many_units_in_flight_keep_each_strategys_share_of_the_quota(nace_project, parallel):
    """With full, distinct answers every strategy gets exactly its planned share, however many units
    are in flight: the last strategy must not fill the room reserved for the others' flying units
    (found on NACE 10-11 at parallel 16: 14 notes samples and no keywords ones for 10.13)."""
    answers = iter(range(100_000))

    def answer(request):
        return json.dumps([f"distinct phrase {next(answers)}" for _ in range(3)])

    codes = ["10.71", "10.89", "11.05"]
    strategies = ["contrastive", "nec", "keywords", "grid", "notes"]
    params = GenerationParams(per_request=3, weights={"notes": 2, "grid": 2})
    run_id = create_run(nace_project, codes=codes, quota=12, seed=5, backend=SCRIPTED, strategies=strategies,
                        params=params)
    backend = _ConcurrentScripted(answer, parallel)
    run_generation(nace_project, run_id, backend=backend)
    assert backend.most_in_flight == parallel
    for code in codes:
        _card, _ctx, plan = plan_for_code(nace_project, code, strategies, 12, params, 5)
        got = dict(nace_project.conn.execute(
            "SELECT strategy, COUNT(*) FROM samples WHERE run_id = ? AND code = ? GROUP BY strategy",
            (run_id, code)).fetchall())
        assert got == {s: n for s, n in plan if n}, code
