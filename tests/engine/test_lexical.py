"""The lexical coder: BM25 over each code's pooled training lines, calibrated, stored sparse, an ensemble member."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from engine.classification import leaf_codes_under
from engine.coders.data import DataMix, build_training_data
from engine.coders.lexical import LexicalCoder, LexicalOptions, terms, words
from engine.coders.registry import get_model, load_coder
from engine.coders.train import train_coder
from engine.errors import ModelError, TrainingError

PAIRS = [("wholesale of beverages", "46.34"), ("wholesale of wine and beer", "46.34"),
         ("retail sale of beverages in shops", "47.25"), ("retail of wine in a shop", "47.25"),
         ("manufacture of beer", "11.05"), ("brewing beer and ale", "11.05")]


def test_words_are_lower_cased_word_tokens_of_any_script():
    assert words("Bière (WHOLESALE), 2-door cars_") == ["bière", "wholesale", "2", "door", "cars_"]
    assert words("  ") == []


def test_terms_are_the_words_then_each_words_marked_character_ngrams():
    assert terms("Beer ale", grams=4) == ["beer", "ale", "#<bee", "#beer", "#eer>", "#<ale", "#ale>"]
    assert terms("a", grams=4) == ["a", "#<a>"]                   # shorter than n: the marked word itself
    assert terms("Beer ale", grams=0) == words("Beer ale")


def test_character_ngrams_place_a_word_the_lines_hold_only_in_another_form():
    # 'brewery' and 'wholesaler' are in no training line: by words alone nothing is known about them
    words_only = LexicalCoder.fit(PAIRS, grams=0)
    assert not words_only.scores(["brewery", "wholesaler"]).any()
    coder = LexicalCoder.fit(PAIRS, grams=4)
    assert coder.grams == 4
    assert coder.predict("brewery", 1)[0][0] == "11.05"          # '#brew' is in 'brewing'
    assert coder.predict("wholesaler", 1)[0][0] == "46.34"       # '#<who', '#hole', ... are in 'wholesale'
    assert coder.predict("beer (retailer)", 1)[0][0] == "47.25"


def test_the_word_that_places_a_text_decides_between_codes_that_share_the_rest():
    coder = LexicalCoder.fit(PAIRS)
    assert coder.codes == ["11.05", "46.34", "47.25"]
    assert coder.predict("beer (wholesale)", 1)[0][0] == "46.34"
    assert coder.predict("beer (retail)", 1)[0][0] == "47.25"
    assert coder.predict("beer (manufacture)", 1)[0][0] == "11.05"
    every = coder.predict("beer", 3)
    assert sum(p for _, p in every) == pytest.approx(1.0) and [p for _, p in every] == sorted(
        (p for _, p in every), reverse=True)


def test_scores_are_bm25_of_the_distinct_known_words():
    coder = LexicalCoder.fit(PAIRS, k1=1.2, b=0.0, grams=0)
    # 'beer' is in two of three codes' bags; 46.34 holds it once among 9 words
    idf = math.log1p((3 - 2 + 0.5) / (2 + 0.5))
    expected = idf * 1 * 2.2 / (1 + 1.2)
    scores = coder.scores(["beer", "beer beer", "unknown words only"])
    at = coder.codes.index("46.34")
    assert scores[0, at] == pytest.approx(expected, rel=1e-5)
    assert np.array_equal(scores[0], scores[1])          # a repeated word counts once
    assert not scores[2].any()                           # nothing known: every code equally likely
    assert [p for _, p in coder.predict("unknown words only", 3)] == pytest.approx([1 / 3] * 3)


def test_coverage_adds_the_idf_weighted_share_of_the_texts_words_each_code_holds():
    plain = LexicalCoder.fit(PAIRS, grams=0)
    covered = LexicalCoder.fit(PAIRS, grams=0, coverage=10.0)
    delta = covered.scores(["Wine shops"])[0] - plain.scores(["Wine shops"])[0]
    at = {c: i for i, c in enumerate(covered.codes)}
    # 'wine' (its first four letters) is in 46.34 and 47.25, 'shop' in 47.25 only; 11.05 holds neither
    idf_wine, idf_shop = math.log1p(3 / 2.5), math.log1p(3 / 1.5)
    assert delta[at["47.25"]] == pytest.approx(10.0)
    assert delta[at["46.34"]] == pytest.approx(10.0 * idf_wine / (idf_wine + idf_shop), rel=1e-5)
    assert delta[at["11.05"]] == 0
    # a word no code holds counts in the share: 'zebra' halves nothing held, but lowers every share
    assert (covered.scores(["wine shops zebra"]) - plain.scores(["wine shops zebra"]))[0, at["47.25"]] < 10.0
    assert not (covered.scores(["zebra"]) - plain.scores(["zebra"])).any()


def test_the_prior_favours_codes_with_more_notes_lines_and_only_by_its_weight():
    coder = LexicalCoder.fit(PAIRS, prior=2.0, notes_lines={"47.25": 6, "11.05": 1})
    at = {c: i for i, c in enumerate(coder.codes)}
    assert coder.bias[at["47.25"]] == pytest.approx(2.0 * math.log(7))
    assert coder.bias[at["46.34"]] == 0
    assert coder.predict("zebra", 1)[0][0] == "47.25"      # nothing known: the prior decides
    assert not LexicalCoder.fit(PAIRS, notes_lines={"47.25": 6}).bias.any()     # weight 0: no prior


def test_the_temperature_is_fitted_on_held_out_lines():
    coder = LexicalCoder.fit(PAIRS)
    before = coder.predict("wine wholesale", 1)[0][1]
    temperature = coder.calibrate(["wholesale wine", "shop retail", "ale brewing", "retail wholesale"],
                                  ["46.34", "47.25", "11.05", "47.25"])
    assert temperature == coder.temperature and temperature != 1.0
    assert coder.predict("wine wholesale", 1)[0][0] == "46.34" and coder.predict("wine wholesale", 1)[0][1] != before
    # a held-out line of a code the coder never saw leaves the temperature as it was
    assert coder.calibrate(["anything"], ["99.99"]) == temperature


def test_a_saved_coder_loads_to_the_same_predictions_and_a_damaged_file_is_a_model_error(tmp_path):
    coder = LexicalCoder.fit(PAIRS)
    coder.calibrate(["wholesale wine", "shop retail"], ["46.34", "47.25"])
    path = tmp_path / "lexical.npz"
    coder.save(path)
    again = LexicalCoder.load(path)
    texts = ["beer (wholesale)", "retail wine", "ale"]
    assert again.predict_many(texts, 3) == coder.predict_many(texts, 3)
    assert again.temperature == coder.temperature
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="cannot be read"):
        LexicalCoder.load(path)
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        LexicalCoder.load(tmp_path / "other.npz")
    with pytest.raises(TrainingError):
        LexicalCoder.fit([])


def test_a_format_1_file_of_words_only_still_loads_and_scores_by_words(tmp_path):
    coder = LexicalCoder.fit(PAIRS, grams=0)
    path = tmp_path / "old.npz"
    np.savez_compressed(path, format=np.array("statcoder-lexical/1"), codes=np.array(coder.codes),
                        vocabulary=np.array(coder.vocabulary), indptr=coder.indptr, rows=coder.rows, data=coder.data,
                        temperature=np.array(1.0))
    old = LexicalCoder.load(path)
    assert old.grams == 0 and old.predict_many(["brewery", "beer (wholesale)"], 3) == coder.predict_many(
        ["brewery", "beer (wholesale)"], 3)
    new = LexicalCoder.fit(PAIRS, grams=4, coverage=8.0, prior=1.0, notes_lines={"11.05": 3})
    new.save(tmp_path / "new.npz")
    again = LexicalCoder.load(tmp_path / "new.npz")
    assert again.grams == 4 and again.coverage == 8.0
    assert np.array_equal(again.scores(["beer wholesale shop", "zebra"]), new.scores(["beer wholesale shop", "zebra"]))
    # a format 2 file (words and n-grams, no coverage or prior) scores by BM25 alone
    two = LexicalCoder.fit(PAIRS, grams=4)
    np.savez_compressed(tmp_path / "two.npz", format=np.array("statcoder-lexical/2"), codes=np.array(two.codes),
                        vocabulary=np.array(two.vocabulary), indptr=two.indptr, rows=two.rows, data=two.data,
                        temperature=np.array(1.0), grams=np.array(4))
    loaded = LexicalCoder.load(tmp_path / "two.npz")
    assert loaded.coverage == 0 and not loaded.bias.any()
    assert np.array_equal(loaded.scores(["beer wholesale"]), two.scores(["beer wholesale"]))
    np.savez_compressed(tmp_path / "future.npz", format=np.array("statcoder-lexical/9"), codes=np.array(["x"]))
    with pytest.raises(ModelError, match="not a statcoder lexical model"):
        LexicalCoder.load(tmp_path / "future.npz")


def test_train_coder_registers_a_lexical_coder_that_codes_the_notes(nace_project):
    codes = leaf_codes_under(nace_project, ["10", "11"])
    trained = train_coder(nace_project, DataMix(notes=1, codes=codes, validation_from="training"), kind="lexical",
                          make_default=False)
    record = get_model(nace_project, trained.model_id)
    assert record.kind == "lexical" and record.validation["n"] > 0 and 0 < record.validation["top5"] <= 1
    assert trained.params["temperature"] > 0 and trained.params["vocabulary"] > 100 and trained.params["grams"] == 4
    coder, _ = load_coder(nace_project, trained.model_id)
    assert isinstance(coder, LexicalCoder) and set(coder.codes) <= set(codes)
    assert coder.predict("Brewing of beer", 1)[0][0] == "11.05" and coder.grams == 4
    words_only = train_coder(nace_project, DataMix(notes=1, codes=codes, validation_from="training"), kind="lexical",
                             make_default=False, lexical=LexicalOptions(grams=0))
    assert words_only.params["grams"] == 0 and load_coder(nace_project, words_only.model_id)[0].grams == 0
    assert words_only.params["vocabulary"] < trained.params["vocabulary"]
    # the product's coverage and prior terms, the prior counted from the notes lines only
    assert (trained.params["coverage"], trained.params["prior"]) == (LexicalOptions().coverage, LexicalOptions().prior)
    assert coder.coverage == LexicalOptions().coverage > 0
    data = build_training_data(nace_project, DataMix(notes=1, codes=codes, validation_from="training"))
    lines = Counter(c for (_, c), source in zip(data.train, data.sources) if source == "notes")
    at = coder.codes.index("11.05")
    assert coder.bias[at] == pytest.approx(LexicalOptions().prior * math.log1p(lines["11.05"]), rel=1e-5)
    # with real texts beside the notes, the prior still counts the notes lines alone
    mix = DataMix(notes=1, real=1, codes=codes)
    real_data = build_training_data(nace_project, mix)
    real_lines = Counter(c for (_, c), source in zip(real_data.train, real_data.sources) if source == "notes")
    assert Counter(c for c, source in zip((c for _, c in real_data.train), real_data.sources)
                   if source == "real")["11.05"] > 0
    with_real = load_coder(nace_project, train_coder(nace_project, mix, kind="lexical", make_default=False).model_id)[0]
    assert with_real.bias[with_real.codes.index("11.05")] == pytest.approx(
        LexicalOptions().prior * math.log1p(real_lines["11.05"]), rel=1e-5)


def test_a_model_file_that_cannot_be_written_is_one_error_and_leaves_nothing(nace_project, monkeypatch):
    from engine.coders.registry import models_folder

    codes = leaf_codes_under(nace_project, ["11"])

    def full_disk(self, path):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LexicalCoder, "save", full_disk)
    with pytest.raises(TrainingError, match="could not be written to .*No space left on device"):
        train_coder(nace_project, DataMix(notes=1, codes=codes, validation_from="training"), kind="lexical")
    assert nace_project.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 0
    assert not list(models_folder(nace_project).glob("lexical-*"))
