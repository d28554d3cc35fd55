"""Dataset quality metrics: figures on crafted texts, per code, per run, flag shares, label agreement, coverage."""

from __future__ import annotations

import pytest

from engine.curate import CurationOptions, LabelCheckOptions, curate
from engine.curate.quality import condition_key, quality_report, self_similarity, text_stats
from tests.engine.test_curate import add_run


def test_text_stats_figures():
    stats = text_stats(["fresh bread", "fresh cakes", "bread and cakes"])
    # unigrams: fresh bread fresh cakes bread and cakes -> 4 distinct of 7; bigrams: 4 distinct of 4
    assert stats.samples == 3 and stats.vocabulary == 4
    assert stats.distinct_1 == pytest.approx(4 / 7, abs=1e-4) and stats.distinct_2 == 1.0
    assert self_similarity(["bakery shop", "bakery shop", "bakery shop"]) == 1.0
    assert self_similarity(["bakery"]) is None
    assert 0 < self_similarity(["bakery shop", "pasta factory"]) < 0.5
    # At most max_texts texts are compared, chosen by seed, so big codes stay cheap and reproducible.
    many = [f"text number {i}" for i in range(50)]
    assert self_similarity(many, max_texts=10, seed=1) == self_similarity(many, max_texts=10, seed=1)


def test_condition_key_is_stable():
    assert condition_key('{"style": "short", "persona": "owner"}') == "persona=owner, style=short"
    assert condition_key(None) == condition_key("") == condition_key("{}") == "-"


def test_quality_report_per_code_per_run_and_coverage(nace_project):
    short, long_ = {"style": "short"}, {"style": "sentence"}
    run1, _ = add_run(nace_project, [("10.71", "bakery shop"), ("10.71", "bakery shops"), ("10.71", "fresh cream cakes"),
                                     ("10.73", "fresh pasta"), ("10.73", "pasta")],
                      conditions=[short, short, long_, short, long_], name="first")
    run2, _ = add_run(nace_project, [("10.71", "wedding cakes"), ("10.73", "Sure! noodles")],
                      conditions=[short, short], name="second")

    def checker(train_pairs, texts):
        return [[("10.73", 0.9), ("10.71", 0.1)] if ("pasta" in t or "noodle" in t) else [("10.71", 0.8), ("10.73", 0.2)]
                for t in texts]

    curate(nace_project, options=CurationOptions(label_check=LabelCheckOptions(checker=checker, mode="notes")))
    report = quality_report(nace_project)
    codes = {g.key: g for g in report.per_code}
    assert codes["10.71"].judged == 4 and codes["10.71"].text.samples == 3      # the near-duplicate is rejected
    assert codes["10.71"].flagged == {"near_duplicate": 0.25}
    assert codes["10.73"].flagged == {"prompt_echo": round(1 / 3, 4)}
    assert codes["10.71"].label_agreement == 1.0 and codes["10.73"].label_agreement == 1.0
    assert report.coverage == {"10.71": {"style=short": 2, "style=sentence": 1},
                               "10.73": {"style=short": 1, "style=sentence": 1}}
    assert report.conditions == ["style=sentence", "style=short"]
    runs = {g.key: g for g in report.per_run}
    assert set(runs) == {f"{run1} first", f"{run2} second"}
    assert runs[f"{run1} first"].judged == 5 and runs[f"{run1} first"].text.samples == 4
    assert runs[f"{run2} second"].flagged == {"prompt_echo": 0.5}
    assert runs[f"{run2} second"].text.self_similarity is None    # one accepted text per code: no pairs
    everything = quality_report(nace_project, run_ids=[run1], accepted_only=False)
    assert [g.key for g in everything.per_run] == [f"{run1} first"]
    assert {g.key: g.text.samples for g in everything.per_code} == {"10.71": 3, "10.73": 2}
    markdown = report.markdown()
    assert "| 10.71 | 4 | 3 |" in markdown and "near_duplicate 25 %" in markdown and "style=short" in markdown


def test_label_agreement_counts_disagreements(nace_project):
    add_run(nace_project, [("10.71", "white bread"), ("10.71", "baguettes"), ("10.71", "rye bread"),
                           ("10.73", "egg noodles")])

    def checker(train_pairs, texts):
        return [[("10.73", 0.6), ("10.71", 0.4)] if t in ("baguettes", "egg noodles") else [("10.71", 0.9), ("10.73", 0.1)]
                for t in texts]

    curate(nace_project, options=CurationOptions(label_check=LabelCheckOptions(checker=checker, mode="notes", top_k=2)))
    code = quality_report(nace_project).per_code[0]
    assert code.key == "10.71" and code.label_agreement == round(2 / 3, 4) and code.label_in_top_k == 1.0
    assert code.flagged == {}     # own code in the top 2 and 0.6 is below the confidence bar
