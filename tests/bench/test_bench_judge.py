"""The judge bench's dev texts: never a text the re-ranked coder trained on."""

from __future__ import annotations

import json

import pytest

import bench.judge
from engine.coders.data import build_training_data, notes_pairs


@pytest.mark.parametrize("coder", ["notes-knn", "real+notes"])
def test_dev_texts_are_never_training_texts_of_the_coder_the_judge_re_ranks(nace_project, monkeypatch, coder):
    monkeypatch.setattr(bench.judge, "CODER", coder)
    _, mix, _ = bench.judge.coder_mix()
    # The real pairs the coder trained on (some index entries repeat a note line word for word: those
    # count as notes, which every coder may see).
    data = build_training_data(nace_project, mix)
    trained_real = set(data.train) - set(notes_pairs(nace_project, None, redirected=mix.redirected_notes))
    pool = bench.judge.dev_pool(nace_project)
    real_train = nace_project.conn.execute("SELECT COUNT(*) FROM real_texts WHERE split = 'train'").fetchone()[0]
    assert pool and not {(text, code) for _, text, code in pool} & trained_real
    assert bool(trained_real) == (coder == "real+notes")
    if coder == "notes-knn":
        assert len(pool) == real_train            # it saw no real text: all of real-train may be dev
    else:
        # only the 10 % validation carve of real-train, which the coder did not train on
        assert 0.05 * real_train < len(pool) < 0.15 * real_train
        assert {(text, code) for _, text, code in pool} == set(data.validation)


def test_coders_keep_their_own_result_and_cache_files_but_share_the_test_ids(monkeypatch):
    monkeypatch.setattr(bench.judge, "CODER", "real+notes")
    real = (bench.judge.stem(), bench.judge.cache_path("dev"), bench.judge.test_ids_path())
    monkeypatch.setattr(bench.judge, "CODER", "notes-knn")
    notes = (bench.judge.stem(), bench.judge.cache_path("dev"), bench.judge.test_ids_path())
    assert notes[0] == "nace-full" and real[0] == "nace-full-real+notes"
    assert notes[1] != real[1] and notes[2] == real[2]


def test_judge_methods_keep_their_own_files_but_share_the_test_ids(monkeypatch):
    monkeypatch.setattr(bench.judge, "CODER", "notes-knn")
    monkeypatch.setattr(bench.judge, "METHOD", "channel")
    channel = (bench.judge.stem(), bench.judge.cache_path("dev"), bench.judge.test_ids_path())
    monkeypatch.setattr(bench.judge, "METHOD", "letters")
    letters = (bench.judge.stem(), bench.judge.cache_path("dev"), bench.judge.test_ids_path())
    assert channel[0] == "nace-full-channel" and letters[0] == "nace-full"
    assert channel[1] != letters[1] and channel[2] == letters[2]


def test_a_larger_k_or_threshold_keeps_files_of_its_own_and_the_default_keeps_the_old_names(monkeypatch):
    monkeypatch.setattr(bench.judge, "CODER", "notes-knn")
    monkeypatch.setattr(bench.judge, "METHOD", "channel")
    default = (bench.judge.stem(), bench.judge.cache_path("dev"))
    monkeypatch.setattr(bench.judge, "K", 10)
    monkeypatch.setattr(bench.judge, "THRESHOLD", 0.8)
    wider = (bench.judge.stem(), bench.judge.cache_path("dev"))
    assert default[0] == "nace-full-channel" and wider[0] == "nace-full-channel-k10-t0.8"
    assert default[1] != wider[1] and bench.judge.test_ids_path().name == "judge-test-ids-nace-full.json"


def test_a_channel_verdict_restricted_to_the_first_k_candidates_keeps_their_odds():
    from engine.llm.judge import JudgeVerdict

    verdict = JudgeVerdict(("a", "b", "c", "d"), (0.1, 0.2, 0.3, 0.4), ((0.1, 0.2, 0.3, 0.4),), ((0, 1, 2, 3),))
    two = bench.judge.restrict(verdict, 2)
    assert two.codes == ("a", "b")
    assert two.probs == pytest.approx((1 / 3, 2 / 3))
    assert bench.judge.restrict(verdict, 4) is verdict


def test_chosen_variants_parse_back_to_their_settings_old_and_new_names():
    assert bench.judge.parse_variant("orders=2, prior=fitted") == {"orders": 2, "prior": True, "k": 5, "threshold": 0.5}
    assert bench.judge.parse_variant("orders=1, prior=none (channel)")["k"] == 5
    assert bench.judge.parse_variant("k=10, threshold=0.8 (channel)") == {"orders": 1, "prior": False, "k": 10,
                                                                           "threshold": 0.8}
    # ties in dev go to the cheaper variant
    assert bench.judge.cost_of("k=5, threshold=0.5 (channel)") < bench.judge.cost_of("k=10, threshold=0.5 (channel)")
    assert bench.judge.cost_of("k=5, threshold=0.5 (channel)") < bench.judge.cost_of("k=5, threshold=0.8 (channel)")


def test_the_failure_analysis_sorts_the_judged_texts_by_what_went_wrong(nace_project, monkeypatch):
    """Retrieval misses, right-code-present wins and losses, the moves of the first code and the confused
    pairs are counted from the verdicts; the example shows the channel judge's card."""
    from engine.llm.judge import JudgeVerdict

    monkeypatch.setattr(bench.judge, "METHOD", "channel")
    ids = [1, 2, 3, 4]
    gold = {1: "10.71", 2: "10.72", 3: "11.05", 4: "10.11"}
    texts = {1: "bread", 2: "rusks", 3: "beer", 4: "meat"}
    preds = {1: [("10.72", 0.4), ("10.71", 0.3)], 2: [("10.72", 0.45), ("10.71", 0.4)],
             3: [("10.11", 0.3), ("11.02", 0.2)], 4: [("10.11", 0.9), ("10.12", 0.1)]}

    def verdict(codes, probs):
        return JudgeVerdict(tuple(codes), tuple(probs), (tuple(probs),), (tuple(range(len(codes))),), 1.0, 10)

    verdicts = {1: verdict(["10.72", "10.71"], [0.2, 0.8]),     # right code present: judge right
                2: verdict(["10.72", "10.71"], [0.3, 0.7]),     # right code present: judge wrong
                3: verdict(["10.11", "11.02"], [0.5, 0.5])}     # right code missing
    combined = {1: [("10.71", 0.6)], 2: [("10.71", 0.6)], 3: [("10.11", 0.5)], 4: preds[4]}
    out = bench.judge.failure_analysis(nace_project, ids, texts, preds, verdicts, combined, gold)
    assert out["judged"] == 3
    assert out["outcomes_of_judged"] == {"among them, coder + judge right": 1, "among them, coder + judge wrong": 1,
                                         "right code not among the candidates": 1}
    assert out["judge_alone_when_right_code_present"] == 0.5
    assert out["combination_moved_top1"] == {"wrong -> right": 1, "right -> wrong": 1}
    assert out["errors"] == 2 and out["errors_within_the_same_group"] == 1     # 10.72 -> 10.71, not 11.05 -> 10.11
    assert {(p["gold"], p["predicted"]) for p in out["confused_pairs"]} == {("10.72", "10.71"), ("11.05", "10.11")}
    example = out["example"]
    assert example["text"] == "rusks" and example["gold"] == "10.72"
    assert example["card"].startswith("Short answers") and "Code 10.72:" in example["card"]
    assert any("Where it fails" in line for line in bench.judge.analysis_lines(out))


def test_a_larger_test_sample_holds_the_committed_200_and_has_files_of_its_own(monkeypatch):
    committed = json.loads(bench.judge.test_ids_path(200).read_text(encoding="utf-8"))["ids"]
    everything = list(range(1, 20_000))
    larger = bench.judge.larger_test_ids(everything, 1_000, 0)
    assert len(larger) == len(set(larger)) == 1_000 and set(committed) <= set(larger)
    assert larger == bench.judge.larger_test_ids(everything, 1_000, 0)       # seeded
    assert larger != bench.judge.larger_test_ids(everything, 1_000, 1)
    assert set(bench.judge.larger_test_ids(everything, 600, 0)) < set(larger)   # nested: 600 inside 1,000
    monkeypatch.setattr(bench.judge, "TEST_N", 1_000)
    assert bench.judge.stem() == "nace-full-test1000" and bench.judge.stem(with_test_n=False) == "nace-full"
    assert bench.judge.test_ids_path().name == "judge-test-ids-nace-full-1000.json"
