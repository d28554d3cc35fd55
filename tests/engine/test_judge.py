"""The LLM judge: the mechanism (engine.llm.judge) with a scripted backend and with the Gemma 3 270M test
model in-process; its use in a project (engine.assist.judge): fitting, the second opinion, judged batch coding."""

from __future__ import annotations

import csv
import dataclasses
import math
import shutil

import pytest

from engine.coders.registry import clear_coder_cache
from engine.assist.coding import batch_code_csv
from engine.errors import Cancelled, ModelError, StatcoderError
from engine.jobs import CancelToken
from engine.assist.judge import BatchJudge, Judge, JudgeConfig, candidates_for, fit_judge, second_opinion, stored_config
from engine.llm.backends import open_backend
from engine.llm.judge import (Candidate, ChoiceScores, Combination, JudgeOptions, JudgeVerdict, candidate_orders,
                              combine, fit_combination, fit_position_prior, judge_candidates, judge_prompt,
                              recalibrate, channel_card, channel_text)
from engine.store.project import Project
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.data import DataMix
from engine.classification import leaf_codes_under
from tests.engine.llm_support import gemma_path, gemma_settings  # noqa: F401
from tests.engine.test_llm_server import server_url  # noqa: F401  (a real llama_cpp.server with the test model)

CANDIDATES = [
    Candidate("10.71", "Manufacture of bread; manufacture of fresh pastry goods and cakes",
              ("manufacture of bakery products: bread and rolls", "manufacture of fresh pastry, cakes, pies")),
    Candidate("11.05", "Manufacture of beer", ("brewing of malt liquors",)),
    Candidate("10.51", "Operation of dairies and cheese making", ("manufacture of fresh liquid milk",)),
    Candidate("10.82", "Manufacture of cocoa, chocolate and sugar confectionery", ()),
]


class BiasedBackend:
    """Scripted judge: knows the right code for a text, but adds a fixed preference for position A."""

    model_name = "scripted"
    model_sha256 = "scripted-sha"
    prompt_kind = "completion"
    name = "scripted"

    def __init__(self, right: dict[str, str], *, skill: float = 2.0, bias: float = 3.0):
        self.right, self.skill, self.bias = right, skill, bias
        self.calls = 0

    def choice_logprobs(self, prompt, options):
        self.calls += 1
        text = prompt.shared.split('"')[1]
        lines = [l for l in prompt.task.splitlines() if l[:2] in {f"{o}." for o in options}]
        shown = [l.split()[1] for l in lines]
        logits = [(self.bias if i == 0 else 0.0) + (self.skill if code == self.right.get(text) else 0.0)
                  for i, code in enumerate(shown)]
        total = math.log(sum(math.exp(v) for v in logits))
        return ChoiceScores(tuple(v - total for v in logits), prompt_tokens=100)


# the mechanism, scripted ------------------------------------------------------------------------------
def test_prompt_lists_lettered_candidates_with_note_lines_and_shares_the_text_prefix():
    prompt = judge_prompt("bakery making bread", CANDIDATES, JudgeOptions(max_lines=1))
    assert prompt.shared == 'Description: "bakery making bread"'
    assert "A. 10.71 Manufacture of bread" in prompt.task and "D. 10.82" in prompt.task
    assert "   - manufacture of bakery products: bread and rolls" in prompt.task
    assert "cakes, pies" not in prompt.task          # max_lines=1
    assert prompt.task.endswith("Answer with one letter, A to D.")


def test_orders_put_every_candidate_at_every_position_and_depend_on_the_seed():
    orders = candidate_orders(4, JudgeOptions(orders=4, seed=3), "x")
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    for pos in range(4):
        assert sorted(o[pos] for o in orders) == [0, 1, 2, 3]
    assert candidate_orders(4, JudgeOptions(orders=4, seed=3), "x") == orders
    assert candidate_orders(4, JudgeOptions(orders=1, seed=None), "x") == [(0, 1, 2, 3)]
    shuffled = {candidate_orders(4, JudgeOptions(orders=1, seed=s), "x")[0] for s in range(8)}
    assert len(shuffled) > 1


def test_position_bias_is_divided_out_by_rotations_and_by_a_fitted_prior():
    text = "bakery making bread"
    backend = BiasedBackend({text: "11.05"})           # the right answer here is at position B
    one = judge_candidates(backend, text, CANDIDATES, options=JudgeOptions(orders=1, seed=None))
    assert one.best[0] == "10.71"                        # the bias for A wins with one order
    assert sum(one.probs) == pytest.approx(1.0)
    rotated = judge_candidates(backend, text, CANDIDATES, options=JudgeOptions(orders=4, seed=0))
    assert rotated.best[0] == "11.05" and sum(rotated.probs) == pytest.approx(1.0)
    # A prior fitted over texts whose right answers are spread evenly removes the bias with one order too.
    texts = {f"text {i}": CANDIDATES[i % 4].code for i in range(8)}
    many = BiasedBackend(texts)
    verdicts = [judge_candidates(many, t, CANDIDATES, options=JudgeOptions(orders=1, seed=i))
                for i, t in enumerate(texts)]
    prior = fit_position_prior(verdicts, 4)
    assert sum(prior) == pytest.approx(1.0) and prior[0] > 0.5 and max(prior[1:]) < 0.25
    fixed = recalibrate(one, prior)
    assert fixed.best[0] == "11.05" and sum(fixed.probs) == pytest.approx(1.0)


def test_combination_keeps_the_coder_when_unweighted_or_below_the_gate():
    coder = [("10.71", 0.4), ("11.05", 0.3), ("10.51", 0.1), ("10.82", 0.05), ("01.11", 0.02)]
    verdict = JudgeVerdict(("10.71", "11.05", "10.51", "10.82"), (0.1, 0.7, 0.1, 0.1), (), ())
    same = combine(coder, verdict, Combination(weight=0.0))
    assert [c for c, _ in same] == [c for c, _ in coder] and [p for _, p in same] == pytest.approx([p for _, p in coder])
    merged = combine(coder, verdict, Combination(weight=1.0))
    assert merged[0][0] == "11.05"
    assert sum(p for _, p in merged) == pytest.approx(sum(p for _, p in coder))   # mass kept
    assert dict(merged)["01.11"] == 0.02                                           # outside the list: untouched
    gated = combine(coder, verdict, Combination(weight=1.0, gate=0.8))
    assert gated[0][0] == "10.71"


def test_fit_combination_uses_the_judge_only_as_far_as_it_helps():
    coder = [[("a", 0.5), ("b", 0.4), ("c", 0.1)]] * 10
    gold = ["b"] * 6 + ["a"] * 4
    good = [JudgeVerdict(("a", "b", "c"), (0.05, 0.9, 0.05) if g == "b" else (0.6, 0.3, 0.1), (), ()) for g in gold]
    fit = fit_combination(coder, good, gold)
    assert fit.combination.weight > 0 and fit.combined_top1 > fit.coder_top1
    useless = [JudgeVerdict(("a", "b", "c"), (0.1, 0.1, 0.8), (), ())] * 10
    fit = fit_combination(coder, useless, gold)
    assert fit.combination.weight == 0 and fit.combined_top1 == fit.coder_top1


def test_too_few_candidates_or_a_backend_without_choices_is_a_clear_error():
    with pytest.raises(ModelError, match="at least two"):
        judge_candidates(BiasedBackend({}), "x", CANDIDATES[:1])

    class NoChoices:
        name = "nochoices"

    with pytest.raises(ModelError, match="cannot score choices"):
        judge_candidates(NoChoices(), "x", CANDIDATES)


# the mechanism with the Gemma 3 270M test model -----------------------------------------------------------
@pytest.fixture(scope="module")
def gemma(gemma_path):
    with open_backend(gemma_settings(gemma_path)) as loaded:
        yield loaded


@pytest.mark.slow
def test_gemma_judge_probabilities_sum_to_one_and_repeat_for_a_seed(gemma):
    options = JudgeOptions(orders=2, seed=5)
    first = judge_candidates(gemma, "bakery making bread and rolls", CANDIDATES, options=options)
    assert first.codes == tuple(c.code for c in CANDIDATES)
    assert sum(first.probs) == pytest.approx(1.0) and all(0 < p < 1 for p in first.probs)
    assert all(sum(r) == pytest.approx(1.0) for r in first.raw) and len(first.raw) == 2
    again = judge_candidates(gemma, "bakery making bread and rolls", CANDIDATES, options=options)
    assert again.probs == pytest.approx(first.probs, abs=1e-6)
    gemma.reset_cache()
    cold = judge_candidates(gemma, "bakery making bread and rolls", CANDIDATES, options=options)
    assert cold.probs == pytest.approx(first.probs, abs=1e-4)
    other = judge_candidates(gemma, "bakery making bread and rolls", CANDIDATES, options=JudgeOptions(orders=2, seed=6))
    assert other.orders != first.orders


@pytest.mark.slow
def test_gemma_choice_logprobs_reuse_the_text_prefix(gemma):
    letters = ["A", "B", "C", "D"]
    prompt = judge_prompt("brewing beer", CANDIDATES)
    gemma.reset_cache()
    cold = gemma.choice_logprobs(prompt, letters)
    rotated = judge_prompt("brewing beer", CANDIDATES[1:] + CANDIDATES[:1])
    warm = gemma.choice_logprobs(rotated, letters)
    assert cold.cached_tokens == 0 and warm.cached_tokens > 40
    assert sum(math.exp(v) for v in warm.logprobs) == pytest.approx(1.0)


# the judge in a project ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coded(_nace_template, tmp_path_factory):
    """A NACE project with a fastText model for divisions 10-11 (notes only, so it is often unsure)."""
    path = tmp_path_factory.mktemp("judge") / "judge.statcoder"
    shutil.copy(_nace_template, path)
    project = Project.open(path)
    codes = leaf_codes_under(project, ["10", "11"])
    params = dataclasses.replace(DEFAULT_PARAMS, bucket=20_000, thread=1)
    result = train_fasttext(project, DataMix(notes=1, real=1, codes=codes), TrainOptions(params=params))
    yield project, codes, result
    project.close()
    clear_coder_cache()


def test_candidates_carry_title_and_note_lines(coded):
    project, _, _ = coded
    bread, beer = candidates_for(project, ["10.71", "11.05"])
    assert bread.title.startswith("Manufacture of bread") and bread.lines and bread.title not in bread.lines
    assert beer.code == "11.05"


@pytest.mark.slow
def test_fit_judge_on_the_validation_carve_and_a_second_opinion(coded, gemma):
    project, codes, result = coded
    config = fit_judge(project, gemma, k=4, orders=2, threshold=1.01, limit=6, method="letters")
    assert config.method == "letters" and config.fitted and config.fit["validation"] == "real validation carve" and config.fit["judged"] == 6
    assert len(config.prior) == 4 and sum(config.prior) == pytest.approx(1.0)
    assert config.coder_sha256 == result.sha256 and config.judge_model_sha256 == gemma.model_sha256
    assert config.fit["seconds_per_text"] > 0
    stored = stored_config(project)
    assert stored is not None and stored.combination == config.combination and stored.prior == config.prior
    opinion = second_opinion(project, "brewing beer and ale", backend=gemma)
    assert len(opinion.judge) == 4 and sum(p for _, p in opinion.judge) == pytest.approx(1.0)
    assert opinion.preferred in {c for c, _ in opinion.judge}
    assert [c.code for c in opinion.shown] == [c for c, _ in opinion.coder[:4]]
    assert {c for c, _ in opinion.combined} == {c for c, _ in opinion.coder}
    assert opinion.fitted


class CountingBackend:
    """Wraps a backend and counts the choices it is asked to score."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self.model_name, self.model_sha256, self.prompt_kind = inner.model_name, inner.model_sha256, inner.prompt_kind

    def choice_logprobs(self, prompt, options):
        self.calls += 1
        return self.inner.choice_logprobs(prompt, options)


@pytest.mark.slow
def test_judged_batch_can_be_cancelled_and_resumes_without_judging_twice(coded, gemma, tmp_path):
    project, _, _ = coded
    texts = ["brewing beer", "bakery", "cheese dairy", "chocolate", "making wine from grapes", "pasta",
             "mineral water bottling", "frozen fish", "jam", "pet food"]
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "answer"])
        writer.writerows([[i, t] for i, t in enumerate(texts)] + [[99, ""]])
    out = tmp_path / "out.csv"
    config = JudgeConfig(k=3, orders=1, threshold=0.99, method="letters")
    counting = CountingBackend(gemma)
    token = CancelToken()
    first = BatchJudge(Judge(project, counting, config=config), out)

    def cancel_after_three(info):
        if first.judged >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        batch_code_csv(project, src, out, text_column="answer", threshold=0.99, judge=first,
                       progress=cancel_after_three, cancel=token)
    assert not out.exists() and first.path.exists() and first.judged == 3
    assert len(first.path.read_text(encoding="utf-8").splitlines()) == 3
    calls_before = counting.calls
    second = BatchJudge(Judge(project, counting, config=config), out)
    result = batch_code_csv(project, src, out, text_column="answer", threshold=0.99, judge=second)
    assert second.reused == 3 and second.judged >= 1
    assert counting.calls - calls_before == second.judged          # nothing judged twice
    assert result.judge["judged"] == second.judged and not second.path.exists()
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 11 and rows[-1]["status"] == "review" and rows[-1]["judge"] == ""
    judged = [r for r in rows if r["judge"]]
    assert len(judged) == 3 + second.judged and {r["judge"] for r in judged} <= {"agreed", "changed"}
    # The same batch from scratch gives the same output: resuming changed nothing.
    fresh_out = tmp_path / "fresh.csv"
    batch_code_csv(project, src, fresh_out, text_column="answer", threshold=0.99,
                   judge=BatchJudge(Judge(project, gemma, config=config), fresh_out))
    assert fresh_out.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


def test_a_judge_fitted_to_no_weight_is_not_asked_in_batch_coding(coded, tmp_path):
    from engine.llm.judge import Combination

    project, _, _ = coded
    src = tmp_path / "in.csv"
    src.write_text("answer\nbrewing beer\nbakery\ncheese dairy\n", encoding="utf-8")
    backend = BiasedBackend({"brewing beer": "11.05"})
    config = JudgeConfig(k=3, orders=1, threshold=0.99, method="letters", fitted=True,
                         combination=Combination(weight=0.0, gate=0.0, temperature=1.0))
    inert = BatchJudge(Judge(project, backend, config=config), tmp_path / "out.csv")
    batch_code_csv(project, src, tmp_path / "out.csv", text_column="answer", threshold=0.99, judge=inert)
    plain = batch_code_csv(project, src, tmp_path / "plain.csv", text_column="answer", threshold=0.99)
    assert backend.calls == 0 and inert.judged == 0 and inert.summary()["not_asked"] == 3
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as a, \
            open(tmp_path / "plain.csv", newline="", encoding="utf-8") as b:
        judged, alone = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["code"] for r in judged] == [r["code"] for r in alone] and plain.rows == 3
    assert {r["judge"] for r in judged} == {""}          # not judged: the judge was not asked


# the mechanism through an OpenAI-compatible server ---------------------------------------------------------
@pytest.mark.slow
def test_judge_through_a_real_llama_cpp_server_matches_the_in_process_judge(server_url, gemma):
    from engine.llm.backends import BackendSettings

    settings = BackendSettings(kind="openai", base_url=server_url, prompt_kind="completion", timeout_s=120)
    options = JudgeOptions(orders=2, seed=1)
    with open_backend(settings) as server:
        remote = judge_candidates(server, "brewing beer and ale", CANDIDATES, options=options)
        again = judge_candidates(server, "brewing beer and ale", CANDIDATES, options=options)
    local = judge_candidates(gemma, "brewing beer and ale", CANDIDATES, options=options)
    assert sum(remote.probs) == pytest.approx(1.0) and remote.probs == pytest.approx(again.probs, abs=1e-6)
    # Same model, same prompt: the server's logprobs give the in-process distribution.
    assert remote.probs == pytest.approx(local.probs, abs=0.02)


@pytest.mark.slow
def test_cli_fit_ask_and_judged_batch(coded, gemma_path, tmp_path, capsys):
    import json

    from engine.cli import main

    project, _, _ = coded
    base = ["-p", str(project.path), "--judge-model", str(gemma_path), "--threads", "1"]
    assert main(["judge", "fit", *base, "-k", "3", "--orders", "1", "--threshold", "1.01", "--limit", "4",
                 "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    # In process, the channel judge by default: no positions, so no position prior.
    assert fitted["fitted"] and fitted["fit"]["judged"] == 4 and fitted["method"] == "channel"
    assert fitted["prior"] is None and fitted["max_lines"] == 3
    assert main(["judge", "ask", *base, "frozen fish fillets", "--json"]) == 0
    opinion = json.loads(capsys.readouterr().out)
    assert len(opinion["judge"]) == 3 and opinion["preferred"] in [c for c, _ in opinion["judge"]]
    src = tmp_path / "in.csv"
    src.write_text("answer\nbrewing beer\nbakery\npasta\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["code", "batch", "-p", str(project.path), str(src), str(out), "--text-column", "answer",
                 "--threshold", "0.99", "--judge", "--judge-model", str(gemma_path), "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 3
    # A judge its fit gave no weight is not asked (it could not re-rank a row); one with weight is.
    if fitted["combination"]["weight"] > 0:
        assert summary["judge"]["judged"] >= 1 and summary["judge"]["not_asked"] == 0
    else:
        assert summary["judge"]["judged"] == 0 and summary["judge"]["not_asked"] >= 1
    assert "judge" in out.read_text(encoding="utf-8").splitlines()[0]


def test_server_logprobs_are_read_from_completion_and_chat_replies():
    from engine.llm.server import _first_top_logprobs

    completion = {"choices": [{"text": "B", "logprobs": {"top_logprobs": [{" B": -0.5, "A": -1.5, " the": -2.0}]}}]}
    chat = {"choices": [{"message": {"content": "B"}, "logprobs": {"content": [
        {"token": "B", "logprob": -0.5, "top_logprobs": [{"token": "B", "logprob": -0.5},
                                                         {"token": "A", "logprob": -1.5}]}]}}]}
    assert _first_top_logprobs(completion) == [(" B", -0.5), ("A", -1.5), (" the", -2.0)]
    assert _first_top_logprobs(chat) == [("B", -0.5), ("A", -1.5)]
    assert _first_top_logprobs({"choices": [{"text": "B"}]}) == []


# the channel judge: log P(text | card) ------------------------------------------------------------------
def test_channel_cards_name_the_classification_and_a_server_cannot_score_them():
    options = JudgeOptions(method="channel", classification="NACE Rev. 2", max_lines=1)
    card = channel_card(CANDIDATES[0], options)
    assert "NACE Rev. 2" in card and "Code 10.71: Manufacture of bread" in card and card.endswith("Answer:")
    assert "bread and rolls" in card and "fresh pastry, cakes" not in card      # max_lines
    scripted = BiasedBackend({})
    with pytest.raises(ModelError, match="channel judge needs the in-process backend"):
        judge_candidates(scripted, "bakery", CANDIDATES, options=options)
    with pytest.raises(ModelError, match="unknown judge method"):
        judge_candidates(scripted, "bakery", CANDIDATES, options=JudgeOptions(method="votes"))


def test_a_backend_without_continuations_gets_the_letter_judge(coded):
    project, _, _ = coded
    judge = Judge(project, BiasedBackend({}))
    assert judge.config.method == "letters" and judge.options.method == "letters"
    with pytest.raises(StatcoderError, match="channel judge needs the in-process backend"):
        fit_judge(project, BiasedBackend({}), method="channel", save=False)


@pytest.mark.slow
def test_gemma_channel_judge_sums_to_one_repeats_and_reuses_its_cards(gemma):
    options = JudgeOptions(method="channel", classification="NACE Rev. 2", max_lines=3)
    gemma.reset_cache()
    cold = judge_candidates(gemma, "bakery making bread and rolls", CANDIDATES, options=options)
    assert cold.codes == tuple(c.code for c in CANDIDATES) and len(cold.raw) == 1
    assert sum(cold.probs) == pytest.approx(1.0) and all(0 < p < 1 for p in cold.probs)
    warm = judge_candidates(gemma, "bakery making bread and rolls", CANDIDATES, options=options)
    assert warm.probs == pytest.approx(cold.probs, abs=1e-3)
    assert warm.prompt_tokens < cold.prompt_tokens / 3          # the cards came from the KV cache
    # The right card makes its text likelier: beer after the beer card, bread after the bread card.
    beer = judge_candidates(gemma, "brewery brewing beer and ale", CANDIDATES, options=options)
    assert beer.best[0] == "11.05" and cold.best[0] == "10.71"


@pytest.mark.slow
def test_channel_scores_do_not_depend_on_the_other_cards_in_the_batch_or_on_eviction(gemma):
    """Each candidate's sequence sees only its own card: scored alone, beside others, or after its card
    was dropped from a full cache and evaluated again, it gets the same log-probability (up to the noise
    of llama.cpp's batch-size-dependent CPU kernels: 0.14 nat for this text with flash attention, which the
    scorer uses, 0.05 without; other texts reach 0.3-0.45 either way), far below what the cards change."""
    import llama_cpp

    from engine.llm.channel import PrefixScorer

    options = JudgeOptions(method="channel", max_lines=2)
    cards = [channel_card(c, options) for c in CANDIDATES]
    text = channel_text("craft brewery")
    scorer = PrefixScorer(llama_cpp, gemma.llm, threads=1, prefixes=3, max_continuations=3)
    try:
        together = scorer.score(cards[:3], text)
        alone = [scorer.score([card], text).logprobs[0] for card in cards[:3]]
        assert together.logprobs == pytest.approx(alone, abs=0.2)
        assert together.cached_prefixes == 0 and scorer.score(cards[:2], text).cached_prefixes == 2
        scorer.score(cards[2:4], text)                           # 3 slots: the least recently used card goes
        again = scorer.score(cards[:3], text)
        assert again.cached_prefixes < 3 and again.logprobs == pytest.approx(together.logprobs, abs=0.2)
        assert max(together.logprobs) - min(together.logprobs) > 1.0   # far more than that noise: the cards count
    finally:
        scorer.close()


@pytest.mark.slow
def test_fit_judge_defaults_to_the_channel_judge_in_process(coded, gemma):
    project, _, result = coded
    config = fit_judge(project, gemma, k=4, threshold=1.01, limit=5, save=False)
    assert config.method == "channel" and config.max_lines == 3 and config.prior is None and config.fitted
    assert config.fit["judged"] == 5 and config.fit["seconds_per_text"] > 0
    judge = Judge(project, gemma, config=config)
    opinion = judge.second_opinion("brewing beer and ale")
    assert len(opinion.judge) == 4 and sum(p for _, p in opinion.judge) == pytest.approx(1.0)
    # The Code page quotes the lines the judge read: the card's first three, no more.
    full = {c.code: c.lines for c in candidates_for(project, [s.code for s in opinion.shown])}
    assert all(s.lines == full[s.code][:3] for s in opinion.shown) and any(len(full[s.code]) > 3 for s in opinion.shown)
