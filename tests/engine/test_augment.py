"""Classical augmentation: seeded, source-linked, real-train only, each operation does what it says."""

from __future__ import annotations

import json
import random

import pytest

from engine.realdata.augment import (NEIGHBOURS, AugmentOptions, abbreviate, augment_real_train, augment_text, augmented_pairs,
                            change_case, dropout, swap, typo, ABBREVIATIONS_EN)
from engine.errors import StatcoderError
from engine.realdata.importing import split_of
from engine.text import normalise_key

TEXTS = [("Bread and flour confectionery baking (manufacture)", "10.71"), ("Crumpet making (manufacture)", "10.71"),
         ("Biscuit manufacturing company", "10.72"), ("Wholesale of dried pasta and noodles", "10.73"),
         ("Fresh pastry", "10.71"), ("Rusks", "10.72"), ("Cake decorating services", "10.71"),
         ("Macaroni production with equipment", "10.73")]


def tiny_project(project) -> dict[str, set[int]]:
    """Three codes and coded texts in both splits (split by the real hash rule); returns ids per split."""
    with project.transaction() as conn:
        for i, code in enumerate(["10.71", "10.72", "10.73"]):
            conn.execute("INSERT INTO codes (code, level, title, is_leaf, ord) VALUES (?, 1, ?, 1, ?)",
                         (code, f"title {code}", i))
        for text, code in TEXTS:
            key = normalise_key(text)
            conn.execute("INSERT INTO real_texts (text, text_key, code, split, source) VALUES (?, ?, ?, ?, 'import')",
                         (text, key, code, split_of(key)))
    ids: dict[str, set[int]] = {"train": set(), "test": set()}
    for rid, split in project.conn.execute("SELECT id, split FROM real_texts"):
        ids[split].add(rid)
    assert ids["train"] and ids["test"], "the crafted texts must land on both sides of the split"
    return ids


def stored(project) -> list[tuple]:
    return project.conn.execute("SELECT real_id, text, code, ops, seed FROM augmented_texts ORDER BY id").fetchall()


def test_same_seed_same_variants_and_rerun_adds_nothing(project, tmp_path):
    from engine.store.project import Project

    tiny_project(project)
    first = augment_real_train(project, AugmentOptions(seed=7, per_text=3, ops_per_variant=2))
    rows = stored(project)
    assert first.created == len(rows) > 0
    again = augment_real_train(project, AugmentOptions(seed=7, per_text=3, ops_per_variant=2))
    assert again.created == 0 and again.existing == first.created and stored(project) == rows
    with Project.create(tmp_path / "other.statcoder") as other:
        tiny_project(other)
        augment_real_train(other, AugmentOptions(seed=7, per_text=3, ops_per_variant=2))
        assert stored(other) == rows
        augment_real_train(other, AugmentOptions(seed=8, per_text=3, ops_per_variant=2))
        assert {r[1] for r in stored(other) if r[4] == 8} != {r[1] for r in rows}


def test_test_split_rows_are_never_touched(project):
    ids = tiny_project(project)
    before = project.conn.execute("SELECT * FROM real_texts ORDER BY id").fetchall()
    result = augment_real_train(project, AugmentOptions(seed=1, per_text=2))
    assert result.source_texts == len(ids["train"])
    sources = {r[0] for r in stored(project)}
    assert sources <= ids["train"] and not sources & ids["test"]
    assert project.conn.execute("SELECT * FROM real_texts ORDER BY id").fetchall() == before
    # Every variant points to its source row and carries that row's code, the operations and the seed.
    for real_id, text, code, ops, seed in stored(project):
        source_code = project.conn.execute("SELECT code FROM real_texts WHERE id = ?", (real_id,)).fetchone()[0]
        assert code == source_code and seed == 1 and json.loads(ops)
    # A row that later moves to the test split no longer feeds training through its variants.
    moved = min(sources)
    project.conn.execute("UPDATE real_texts SET split = 'test' WHERE id = ?", (moved,))
    texts_of_moved = {r[1] for r in stored(project) if r[0] == moved}
    assert not texts_of_moved & {t for t, _ in augmented_pairs(project)}


def test_codes_filter_and_options_validation(project):
    tiny_project(project)
    augment_real_train(project, AugmentOptions(codes=["10.73"], per_text=1))
    assert {r[2] for r in stored(project)} <= {"10.73"}
    with pytest.raises(StatcoderError, match="unknown augmentation"):
        augment_real_train(project, AugmentOptions(operations=["shout"]))


def test_typo_replaces_one_letter_with_a_keyboard_neighbour():
    rng = random.Random(3)
    for _ in range(20):
        words = ["Bread", "baking"]
        out = typo(words, rng)
        changed = [(a, b) for w, v in zip(words, out) for a, b in zip(w, v) if a != b]
        assert len(changed) == 1
        a, b = changed[0]
        assert b.lower() in NEIGHBOURS[a.lower()] and a.isupper() == b.isupper()
    assert NEIGHBOURS["a"] == "qswz" and "g" in NEIGHBOURS["h"] and "p" not in NEIGHBOURS["a"]
    assert typo(["an", "ox"], rng) is None


def test_dropout_swap_abbreviation_and_case():
    rng = random.Random(0)
    words = "wholesale of dried pasta and noodles".split()
    dropped = dropout(words, rng, 0.5)
    assert 2 <= len(dropped) < len(words) and all(w in words for w in dropped)
    assert dropout(["fresh", "pastry"], rng) is None
    swapped = swap(words, rng)
    assert sorted(swapped) == sorted(words) and swapped != words
    assert abbreviate(["Bread", "(manufacture)"], rng, ABBREVIATIONS_EN) == ["Bread", "(mfr)"]
    assert abbreviate(["bread"], rng, ABBREVIATIONS_EN) is None
    cased = change_case(["Fresh", "pastry"], rng)
    assert " ".join(cased).casefold() == "fresh pastry" and cased != ["Fresh", "pastry"]


def test_augment_text_reports_the_operations_applied():
    options = AugmentOptions(operations=["swap", "case"], ops_per_variant=2)
    text, ops = augment_text("Fresh cream cakes", random.Random(5), options)
    assert sorted(ops) == ["case", "swap"] and text.casefold() != "fresh cream cakes"
    assert sorted(text.casefold().split()) == ["cakes", "cream", "fresh"]
    assert augment_text("Rusks", random.Random(0), AugmentOptions(operations=["swap", "dropout"])) is None
