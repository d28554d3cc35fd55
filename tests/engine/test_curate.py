"""Curation on crafted samples: each rule fires where it should and not on near-misses; decisions are reversible."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.curate import (CurationOptions, GarbageLimits, LabelCheckOptions, accepted_samples, balance_report,
                           clear_user_status, compare_key, curate, export_curated, flag_counts, garbage_reason,
                           list_flags, make_sample, override_flag, set_sample_status)
from engine.curate.rules import duplicates, excludes_conflicts, label_conflicts, note_copies, note_lines
from engine.errors import StatcoderError
from engine.classification.note_lines import notes_pairs

NO_CHECK = CurationOptions(label_check=None)


def add_run(project, samples, *, quota: int = 5, codes=None, name: str = "crafted", conditions=None) -> tuple[int, list[int]]:
    """A generation run with the given (code, text) samples, as the generator would store them."""
    codes = sorted(codes if codes is not None else {c for c, _ in samples})
    with project.transaction() as conn:
        run_id = conn.execute(
            "INSERT INTO generation_runs (name, status, strategies, codes, quota, seed, params)"
            " VALUES (?, 'done', '[\"crafted\"]', ?, ?, 0, '{}')", (name, json.dumps(codes), quota)).lastrowid
        ids = []
        for i, (code, text) in enumerate(samples):
            condition = json.dumps(conditions[i]) if conditions else None
            ids.append(conn.execute(
                "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash,"
                " condition, seed, model_sha256, backend, params) VALUES (?, ?, ?, ?, 'crafted', ?, 'v1', 'h', ?, 0,"
                " 'none', 'crafted', '{}')", (run_id, code, text, compare_key(text), f"u{i}", condition)).lastrowid)
    return run_id, ids


def flags_of(project, sample_id: int) -> dict[str, str | None]:
    return {f.rule: f.suggested_code for f in list_flags(project) if f.sample_id == sample_id}


def curated_code(project, sample_id: int) -> str | None:
    return project.conn.execute("SELECT curated_code FROM samples WHERE id = ?", (sample_id,)).fetchone()[0]


def status(project, sample_id: int) -> tuple[str, str]:
    return tuple(project.conn.execute("SELECT status, status_by FROM samples WHERE id = ?", (sample_id,)).fetchone())


# rules on in-memory samples ------------------------------------------------------------------

def test_comparison_key_normalises_whitespace_quotes_list_markers_and_case():
    assert compare_key("  - \u201cBakery\u201d   SHOP!  ") == "bakery shop"
    assert compare_key("2) bakery\u00a0shop") == "bakery shop"
    assert compare_key("bakery-shop") == "bakery shop"


def test_near_duplicate_threshold_keeps_bakery_apart_from_bakery_shop():
    samples = [make_sample(1, "10.71", "bakery"), make_sample(2, "10.71", "bakery shop"),
               make_sample(3, "10.71", "bakery shops"), make_sample(4, "10.71", "Bakery shop."),
               make_sample(5, "10.72", "bakery shops"), make_sample(6, "10.71", "bakers shop"),
               make_sample(7, "10.71", "dry bakery shop")]
    hits = {h.sample_id: h for h in duplicates(samples, threshold=90)}
    # "bakery" vs "bakery shop" scores 70.6 and "dry bakery shop" adds a word: all three are kept.
    assert {i: h.rule for i, h in hits.items()} == {3: "near_duplicate", 4: "duplicate", 6: "near_duplicate"}
    assert "sample 2" in hits[3].reason and "96%" in hits[3].reason and "sample 2" in hits[4].reason
    # The threshold decides: "bakers shop" (90.9 % like "bakery shop") is its own text at 95, "bakery shops"
    # (95.7 %) is not; the same text under another code is never a duplicate.
    strict = {h.sample_id: h.rule for h in duplicates(samples, threshold=95)}
    assert strict == {3: "near_duplicate", 4: "duplicate"}


def test_label_conflicts_flag_both_sides_and_real_train_evidence():
    samples = [make_sample(1, "10.71", "bakery"), make_sample(2, "10.72", "Bakery!"),
               make_sample(3, "10.71", "bakery shop"), make_sample(4, "10.71", "rusks")]
    hits = {h.sample_id: h for h in label_conflicts(samples, real_train=[("Rusks", "10.72"), ("cakes", "10.72")])}
    assert set(hits) == {1, 2, 4}
    assert hits[1].suggested_code == "10.72" and hits[2].suggested_code == "10.71"
    assert hits[4].suggested_code == "10.72" and "real-train" in hits[4].reason


def test_note_copy_marks_own_note_lines_but_not_near_misses():
    lines = {"10.71": note_lines("Manufacture of bread; manufacture of fresh pastry goods and cakes",
                                 "This class includes:\n- manufacture of bakery products:\n  . bread and rolls"),
             "10.73": note_lines("Manufacture of macaroni, noodles, couscous and similar farinaceous products")}
    assert lines["10.71"][1:] == ["manufacture of bakery products", "bread and rolls"]
    samples = [make_sample(1, "10.71", "Bread and rolls."), make_sample(2, "10.71", "manufacture of bakery product"),
               make_sample(3, "10.71", "manufacture of dry bakery products"),
               make_sample(4, "10.71", "making bread and rolls at home"),
               make_sample(5, "10.71", "manufacture of macaroni, noodles, couscous and similar farinaceous products")]
    hits = {h.sample_id: h for h in note_copies(samples, lines, threshold=90)}
    assert {i: h.rule for i, h in hits.items()} == {1: "note_copy", 2: "note_copy", 5: "note_conflict"}
    assert hits[5].suggested_code == "10.73"


def test_excludes_conflict_matches_content_words_not_shared_phrasing():
    links = {"10.71": [("10.72", "manufacture of dry bakery products"), ("10.73", "manufacture of pastas")]}
    samples = [make_sample(1, "10.71", "manufacture of dry bakery products"),
               make_sample(2, "10.71", "Dry bakery product manufacturing"),
               make_sample(3, "10.71", "manufacture of bakery products"),        # near-miss: no "dry"
               make_sample(4, "10.71", "fresh pasta"),
               make_sample(5, "10.71", "bread rolls with a pasta filling and cheese"),  # mentions pasta, is not pasta
               make_sample(6, "10.72", "manufacture of dry bakery products")]    # 10.72 does not exclude it
    hits = {h.sample_id: h.suggested_code for h in excludes_conflicts(samples, links)}
    assert hits == {1: "10.72", 2: "10.72", 4: "10.73"}


@pytest.mark.parametrize("text,rule", [
    ("", "empty"), ("...", "empty"), ("ab", "too_short"),
    (" ".join(["bread"] + ["word%d" % i for i in range(45)]), "too_long"),
    ("Here are some examples of bakery phrases", "prompt_echo"), ("Sure! bakery", "prompt_echo"),
    ("<start_of_turn>model bakery", "prompt_echo"), ("This class includes bread", "prompt_echo"),
    ("bakery 10.71", "prompt_echo"), ("bread bread bread", "repeated_tokens"),
    ("cake shop cake shop cake shop", "repeated_tokens"),
    ("fabrication de pain et de pâtisserie", "language"), ("Herstellung von Brot und Backwaren", "language"),
    ("хлебопекарня", "language"),
])
def test_garbage_rules_fire(text, rule):
    found = garbage_reason(text, code="10.71", limits=GarbageLimits(language="en"))
    assert found is not None and found[0] == rule, found


@pytest.mark.parametrize("text", [
    "pie", "bakery", "I run a small bakery making bread for local shops", "bread and bread rolls",
    "pain au chocolat bakery", "sure-fit shoe making", "examples of fine patisserie", "café and crêpe making",
    "bakery next to unit 10.72", "tea room with 2000 seats",
])
def test_garbage_rules_spare_near_misses(text):
    assert garbage_reason(text, code="10.71", limits=GarbageLimits(language="en")) is None


def test_language_rule_follows_the_project_language():
    assert garbage_reason("fabrication de pain et de pâtisserie", limits=GarbageLimits(language="fr")) is None
    assert garbage_reason("bread and rolls for the shop", limits=GarbageLimits(language="fr"))[0] == "language"
    assert garbage_reason("хлебопекарня", limits=GarbageLimits(language="ru")) is None


# curation on a project -----------------------------------------------------------------------

def test_curate_flags_an_excludes_copy_of_10_71_with_10_72_suggested(nace_project):
    _, ids = add_run(nace_project, [("10.71", "manufacture of dry bakery products"),
                                    ("10.71", "manufacture of bakery products"),
                                    ("10.71", "fresh cream cakes"), ("10.71", "bakery"), ("10.71", "bakery shop")])
    result = curate(nace_project, options=NO_CHECK)
    assert flags_of(nace_project, ids[0]) == {"excludes_conflict": "10.72"}
    assert flags_of(nace_project, ids[1]) == {"note_copy": None}          # marked, kept
    assert flags_of(nace_project, ids[3]) == flags_of(nace_project, ids[4]) == {}
    # By default the excluded-to code becomes its curated label: it trains 10.72, not 10.71.
    assert status(nace_project, ids[0]) == ("accepted", "rule")
    assert curated_code(nace_project, ids[0]) == "10.72"
    assert status(nace_project, ids[1]) == ("accepted", "default") and curated_code(nace_project, ids[1]) is None
    params = json.loads(nace_project.conn.execute("SELECT params FROM curation_runs WHERE id = ?",
                                                  (result.curation_id,)).fetchone()[0])
    assert params["near_threshold"] == 90.0 and params["run_ids"] == [1]
    assert params["relabel"] == ["excludes_conflict", "label_check"]
    assert result.accepted == 5 and result.relabeled == 1 and result.rejected == 0
    assert result.flags == {"excludes_conflict": 1, "note_copy": 1}
    # Without relabelling the same flag rejects it.
    result = curate(nace_project, options=dataclasses.replace(NO_CHECK, relabel=frozenset()))
    assert status(nace_project, ids[0]) == ("rejected", "rule") and curated_code(nace_project, ids[0]) is None
    assert result.accepted == 4 and result.rejected == 1 and result.relabeled == 0


def test_a_relabelled_sample_trains_its_new_code_until_the_flag_is_overridden(nace_project):
    from engine.coders.data import DataMix, build_training_data

    _, ids = add_run(nace_project, [("10.71", "manufacture of dry bakery products"), ("10.71", "fresh cream cakes")])
    curate(nace_project, options=NO_CHECK)
    mix = DataMix(notes=0, synthetic=1, codes=["10.71", "10.72"], validation_share=0)
    assert sorted(build_training_data(nace_project, mix).train) == [
        ("fresh cream cakes", "10.71"), ("manufacture of dry bakery products", "10.72")]
    # Only 10.71 asked for: the relabelled sample is not a 10.71 text any more.
    only = build_training_data(nace_project, dataclasses.replace(mix, codes=["10.71"])).train
    assert only == [("fresh cream cakes", "10.71")]
    assert accepted_samples(nace_project, codes=["10.72"]) == [("manufacture of dry bakery products", "10.72")]
    # The run asked for 10.71 only: a sample relabelled away does not put 10.72 on the to-do list.
    assert set(balance_report(nace_project).accepted) == {"10.71"}
    (flag,) = [f for f in list_flags(nace_project) if f.sample_id == ids[0]]
    override_flag(nace_project, [flag.id])
    assert status(nace_project, ids[0]) == ("accepted", "default") and curated_code(nace_project, ids[0]) is None
    assert ("manufacture of dry bakery products", "10.71") in build_training_data(nace_project, mix).train
    override_flag(nace_project, [flag.id], overridden=False)
    assert curated_code(nace_project, ids[0]) == "10.72"
    # The generated code itself was never changed.
    assert nace_project.conn.execute("SELECT code FROM samples WHERE id = ?", (ids[0],)).fetchone()[0] == "10.71"
    # A reviewer's own label wins over the curated one.
    from engine.curate.samples import edit_sample

    edited = edit_sample(nace_project, ids[0], code="10.73")
    assert edited.label == "10.73" and edited.curated_code is None and edited.original_code == "10.71"


def test_decide_prefers_the_excludes_suggestion_and_rejects_on_any_rejecting_flag():
    from engine.curate.store import decide

    relabel, reject = {"excludes_conflict", "label_check"}, {"label_check", "excludes_conflict", "near_duplicate"}
    assert decide("10.71", [("label_check", "10.13"), ("excludes_conflict", "10.72")], reject, relabel) == \
        ("accepted", "10.72")
    assert decide("10.71", [("label_check", "10.13"), ("near_duplicate", None)], reject, relabel) == ("rejected", None)
    assert decide("10.71", [("label_check", None)], reject, relabel) == ("rejected", None)
    assert decide("10.71", [("label_check", "10.71")], reject, relabel) == ("rejected", None)
    assert decide("10.71", [("note_copy", None)], reject, relabel) == ("accepted", None)
    assert decide("10.71", [("label_check", "10.13")], reject, set()) == ("rejected", None)


def test_decisions_are_reversible_and_user_decisions_survive_curation(nace_project):
    _, ids = add_run(nace_project, [("10.71", "bakery shop"), ("10.71", "bakery shops"), ("10.71", "Sure! cakes"),
                                    ("10.71", "wedding cakes")])
    curate(nace_project, options=NO_CHECK)
    assert status(nace_project, ids[1]) == ("rejected", "rule") and status(nace_project, ids[2]) == ("rejected", "rule")
    # The user accepts a rule-rejected sample and rejects an accepted one; a new curation keeps both decisions.
    assert set_sample_status(nace_project, [ids[2]], "accepted") == 1
    set_sample_status(nace_project, [ids[3]], "rejected")
    curate(nace_project, options=NO_CHECK)
    assert status(nace_project, ids[2]) == ("accepted", "user") and status(nace_project, ids[3]) == ("rejected", "user")
    # A rule never overwrites a user.
    assert set_sample_status(nace_project, [ids[2]], "rejected", by="rule") == 0
    # Overriding a flag accepts its sample; the override survives re-curation; undoing it rejects again.
    (near,) = [f for f in list_flags(nace_project) if f.sample_id == ids[1]]
    override_flag(nace_project, [near.id])
    assert status(nace_project, ids[1]) == ("accepted", "default")
    curate(nace_project, options=NO_CHECK)
    (near,) = [f for f in list_flags(nace_project) if f.sample_id == ids[1]]
    assert near.overridden and status(nace_project, ids[1]) == ("accepted", "default")
    override_flag(nace_project, [near.id], overridden=False)
    assert status(nace_project, ids[1]) == ("rejected", "rule")
    # Handing a sample back to the rules undoes the user's decision.
    clear_user_status(nace_project, [ids[2]])
    assert status(nace_project, ids[2]) == ("rejected", "rule")
    # Nothing was deleted: every sample and every curation's flags are still there.
    assert nace_project.conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 4
    per_curation = dict(nace_project.conn.execute("SELECT curation_id, COUNT(*) FROM sample_flags GROUP BY 1"))
    assert sorted(per_curation) == [1, 2, 3] and all(n >= 1 for n in per_curation.values())
    with pytest.raises(StatcoderError):
        set_sample_status(nace_project, [ids[0]], "maybe")
    with pytest.raises(StatcoderError):
        set_sample_status(nace_project, [999], "accepted")


def test_disabled_and_non_rejecting_rules(nace_project):
    _, ids = add_run(nace_project, [("10.71", "bakery shop"), ("10.71", "bakery shops"), ("10.71", "Sure! cakes")])
    curate(nace_project, options=CurationOptions(label_check=None, rules=frozenset({"near_duplicate"}),
                                                 reject=frozenset()))
    assert flags_of(nace_project, ids[1]) == {"near_duplicate": None} and flags_of(nace_project, ids[2]) == {}
    assert [status(nace_project, i)[0] for i in ids] == ["accepted"] * 3
    with pytest.raises(StatcoderError, match="unknown curation rule"):
        curate(nace_project, options=CurationOptions(rules=frozenset({"nonsense"})))


BREAD = ["white bread loaves", "fresh bread rolls", "baking sourdough bread", "cream cakes and pastries",
         "wholemeal bread baking", "croissants and pastries", "birthday cakes baking", "fresh cream cakes",
         "rye bread loaves", "pastry and pies bakery", "bread and cake bakery", "baguettes and bread rolls"]
PASTA = ["dried pasta making", "egg noodles production", "couscous manufacturing", "fresh pasta and ravioli",
         "spaghetti and macaroni", "filled pasta ravioli", "noodles and pasta factory", "lasagne sheets pasta",
         "instant noodles making", "macaroni and noodles", "pasta shapes production", "gnocchi and pasta"]
COFFEE = ["coffee roasting", "roasted coffee beans", "instant coffee production", "tea blending and packing",
          "herbal tea infusions", "decaffeinated coffee", "coffee substitutes", "green tea packing",
          "coffee bean roastery", "tea bags packing", "chicory coffee substitute", "ground coffee packing"]


def test_kfold_fasttext_label_check_finds_mislabelled_samples(nace_project):
    wrong = [("10.71", "spaghetti and ravioli pasta"), ("10.71", "dried egg noodles pasta"),
             ("10.73", "roasted coffee and tea")]
    data = [("10.71", t) for t in BREAD] + [("10.73", t) for t in PASTA] + [("10.83", t) for t in COFFEE] + wrong
    _, ids = add_run(nace_project, data)
    wrong_ids = ids[-3:]
    result = curate(nace_project, options=CurationOptions(label_check=LabelCheckOptions(folds=4, top_k=1)))
    flagged = {f.sample_id: f.suggested_code for f in list_flags(nace_project, rule="label_check")}
    assert flagged[wrong_ids[0]] == "10.73" and flagged[wrong_ids[1]] == "10.73" and flagged[wrong_ids[2]] == "10.83"
    false_alarms = set(flagged) - set(wrong_ids)
    assert len(false_alarms) <= 3, [(f.text, f.reason) for f in list_flags(nace_project, rule="label_check")]
    checks = nace_project.conn.execute("SELECT COUNT(*), SUM(own_rank = 1) FROM sample_checks WHERE curation_id = ?",
                                       (result.curation_id,)).fetchone()
    assert checks[0] == len(data) and checks[1] >= len(data) - 6


def test_label_check_accepts_a_pluggable_checker(nace_project):
    _, ids = add_run(nace_project, [("10.71", "white bread"), ("10.71", "pasta"), ("10.73", "noodles")])
    calls = []

    def keyword_checker(train_pairs, texts):
        calls.append((list(train_pairs), list(texts)))
        return [[("10.73", 0.9), ("10.71", 0.1)] if "pasta" in t or "noodle" in t else [("10.71", 0.95), ("10.73", 0.05)]
                for t in texts]

    curate(nace_project, options=CurationOptions(label_check=LabelCheckOptions(checker=keyword_checker, mode="notes")))
    assert len(calls) == 1
    train, texts = calls[0]
    assert texts == ["white bread", "pasta", "noodles"]
    trained_texts = {t for t, _ in train}
    assert not trained_texts & set(texts)                          # notes mode: notes and real-train only
    assert set(notes_pairs(nace_project, ["10.71", "10.73"])) <= set(train)   # what the notes arm trains on
    real_train = {t for t, c in nace_project.conn.execute("SELECT text, code FROM real_texts WHERE split = 'train'"
                                                          " AND code IN ('10.71', '10.73')")}
    real_test = {t for t, in nace_project.conn.execute("SELECT text FROM real_texts WHERE split = 'test'")}
    assert real_train <= trained_texts and not (trained_texts & real_test - real_train)
    assert {f.sample_id: f.suggested_code for f in list_flags(nace_project, rule="label_check")} == {ids[1]: "10.73"}


def test_balance_quota_report_and_cap(nace_project):
    data = [("10.71", t) for t in ("rolls", "cakes", "pies", "tarts")] + [("10.72", "rusks")]
    run_id, ids = add_run(nace_project, data, quota=3, codes=["10.71", "10.72", "10.73"])
    result = curate(nace_project, options=NO_CHECK)
    assert result.balance.under_quota == {"10.72": 2, "10.73": 3}
    assert result.balance.accepted == {"10.71": 4, "10.72": 1, "10.73": 0}
    curate(nace_project, options=CurationOptions(label_check=None, cap=2))
    capped = [f.sample_id for f in list_flags(nace_project, rule="over_quota")]
    assert capped == ids[2:4]                                      # without a label check: the earliest are kept
    assert balance_report(nace_project, run_ids=[run_id], quota=2).under_quota == {"10.72": 1, "10.73": 2}


def test_accepted_samples_flag_counts_and_export(nace_project, tmp_path):
    run1, ids1 = add_run(nace_project, [("10.71", "bakery shop"), ("10.71", "bakery shops"), ("10.71", "cakes")])
    run2, _ = add_run(nace_project, [("10.73", "fresh pasta")], name="second")
    curate(nace_project, options=NO_CHECK)
    assert accepted_samples(nace_project) == [("bakery shop", "10.71"), ("cakes", "10.71"), ("fresh pasta", "10.73")]
    assert accepted_samples(nace_project, run_ids=[run2]) == [("fresh pasta", "10.73")]
    counts = flag_counts(nace_project)
    assert counts["near_duplicate"].flagged == 1 and counts["near_duplicate"].rejected == 1
    n = export_curated(nace_project, tmp_path / "train.txt", fmt="fasttext")
    lines = (tmp_path / "train.txt").read_text(encoding="utf-8").splitlines()
    assert n == 3 and lines[0] == "__label__10.71 bakery shop" and lines[-1] == "__label__10.73 fresh pasta"
    n = export_curated(nace_project, tmp_path / "all.csv", fmt="csv", run_ids=[run1], include_rejected=True)
    rows = (tmp_path / "all.csv").read_text(encoding="utf-8").splitlines()
    assert n == 3 and rows[0].startswith("sample_id,run_id,code,generated_code,text")
    assert rows[2].endswith("rejected,rule,near_duplicate")


def test_the_default_label_check_reads_embeddings_for_english_and_fasttext_otherwise(nace_project):
    from engine.curate import default_label_check

    english = default_label_check(nace_project)
    assert english.mode == "notes" and english.checker is not None and english.checker.__name__ == "embedding-lr"
    nace_project.set_setting("classification", {**nace_project.get_setting("classification"), "language": "fr"})
    other = default_label_check(nace_project)
    assert other.mode == "kfold" and other.checker is None


def test_a_curation_stored_before_relabelling_existed_still_rejects(nace_project):
    """Project files from before migration m060 hold curations whose params have no 'relabel': their flags
    keep rejecting when statuses are recomputed (an override, say)."""
    from engine.curate.store import refresh_status

    _, ids = add_run(nace_project, [("10.71", "manufacture of dry bakery products")])
    with nace_project.transaction() as conn:
        cid = conn.execute("INSERT INTO curation_runs (params) VALUES (?)",
                           (json.dumps({"reject": ["excludes_conflict"]}),)).lastrowid
        conn.execute("INSERT INTO sample_flags (sample_id, curation_id, rule, reason, suggested_code)"
                     " VALUES (?, ?, 'excludes_conflict', 'copies an excludes line', '10.72')", (ids[0], cid))
        conn.execute("UPDATE samples SET curation_id = ?", (cid,))
        assert refresh_status(conn, ids) == 1
    assert status(nace_project, ids[0]) == ("rejected", "rule") and curated_code(nace_project, ids[0]) is None
