"""The lexical coder: BM25 over each code's pooled training lines, calibrated, stored sparse, an ensemble member."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.classification import leaf_codes_under
from engine.coders.data import DataMix
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
    new = LexicalCoder.fit(PAIRS, grams=4)
    new.save(tmp_path / "new.npz")
    assert LexicalCoder.load(tmp_path / "new.npz").grams == 4
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
