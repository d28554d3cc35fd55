"""Uncoded texts: import, labelling by the coder (+ the LLM judge), provenance, the review queue, and the
rule that test-split texts never become pseudo-labels."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from engine.assist.judge import Judge, JudgeConfig
from engine.assist.pseudo import (decide_pseudo, label_uncoded, mark_reviewed, pseudo_pairs, pseudo_provenance,
                                  pseudo_status, reopen_review,
                                  pseudo_review_queue)
from engine.coders.registry import clear_coder_cache
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.data import DataMix
from engine.classification import leaf_codes_under
from engine.errors import RealDataError, StatcoderError
from engine.realdata.importing import split_of
from engine.realdata.uncoded import import_uncoded_texts
from engine.store.project import Project
from engine.text import normalise_key
from tests.conftest import snapshot
from tests.engine.llm_support import gemma_path, gemma_settings  # noqa: F401

TEXTS = ["brewing of ale in a microbrewery", "industrial bakery for sliced bread", "cheese making dairy farm",
         "chocolate bars and sweets", "bottling spring water", "smoked salmon processing", "dog and cat food",
         "fruit juice pressing", "pasta and noodles", "ice cream parlour production"]


def _a_test_text() -> str:
    """A text that the hash split puts in the test half."""
    for i in range(100):
        text = f"frozen pizza factory number {i}"
        if split_of(normalise_key(text)) == "test":
            return text
    raise AssertionError("no test-split text found")


@pytest.fixture
def labelled_project(_nace_template, tmp_path):
    path = tmp_path / "pseudo.statcoder"
    shutil.copy(_nace_template, path)
    project = Project.open(path)
    codes = leaf_codes_under(project, ["10", "11"])
    params = dataclasses.replace(DEFAULT_PARAMS, bucket=20_000, thread=1)
    result = train_fasttext(project, DataMix(notes=1, real=1, codes=codes), TrainOptions(params=params))
    yield project, codes, result
    project.close()
    clear_coder_cache()


def _write(path, rows, header="answer"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_import_uncoded_reports_duplicates_and_coded_texts(nace_project, tmp_path):
    coded = nace_project.conn.execute("SELECT text FROM real_texts LIMIT 1").fetchone()[0]
    result = import_uncoded_texts(nace_project, _write(tmp_path / "u.csv", TEXTS + [TEXTS[0], coded]),
                                  text_column="answer")
    assert result.imported == len(TEXTS) and result.duplicates == [len(TEXTS) + 2]
    assert result.already_coded == [len(TEXTS) + 3]
    again = import_uncoded_texts(nace_project, _write(tmp_path / "v.csv", TEXTS[:2]), text_column="answer")
    assert again.imported == 0 and len(again.duplicates) == 2


def test_import_uncoded_without_the_column_names_it_and_changes_nothing(nace_project, tmp_path):
    before = snapshot(nace_project)
    with pytest.raises(RealDataError, match="column 'answer' not found"):
        import_uncoded_texts(nace_project, _write(tmp_path / "u.csv", TEXTS, header="text"), text_column="answer")
    assert snapshot(nace_project) == before


def test_coder_labels_with_provenance_and_test_texts_are_never_pseudo_labelled(labelled_project, tmp_path):
    project, codes, trained = labelled_project
    test_text = _a_test_text()
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS + [test_text]), text_column="answer")
    first = label_uncoded(project, threshold=0.0, review=0)          # everything confident enough
    assert first.labelled == len(TEXTS) + 1 and first.pseudo == len(TEXTS) + 1 and first.judged == 0
    # Later the same text arrives as a coded text in the test split: its label must go.
    _write(tmp_path / "coded.csv", [f"{test_text},10.89"], header="text,code")
    from engine.realdata.importing import import_real_texts

    imported = import_real_texts(project, tmp_path / "coded.csv", text_column="text", code_column="code")
    assert imported.test == 1
    pairs = pseudo_pairs(project)
    assert test_text not in {t for t, _ in pairs} and len(pairs) == len(TEXTS)   # filtered at read time too
    again = label_uncoded(project, threshold=0.0, review=0)
    assert again.skipped_test == 1 and again.labelled == 0 and again.pseudo == len(TEXTS)
    rows = project.conn.execute("SELECT coder_model_id, coder_sha256, judge_model_sha256, score, judged"
                                " FROM pseudo_labels").fetchall()
    assert len(rows) == len(TEXTS)
    assert all(r[0] == trained.model_id and r[1] == trained.sha256 and r[2] is None and 0 < r[3] <= 1 and r[4] == 0
               for r in rows)
    assert pseudo_provenance(project)[0]["count"] == len(TEXTS)


def test_threshold_and_review_queue(labelled_project, tmp_path):
    project, _, _ = labelled_project
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS), text_column="answer")
    result = label_uncoded(project, threshold=1.01, review=3)       # nothing is confident enough
    assert result.pseudo == 0 and result.review == 3 and result.held == len(TEXTS) - 3
    queue = pseudo_review_queue(project)
    scores = [item.score for item in queue]
    held = [s for (s,) in project.conn.execute("SELECT score FROM pseudo_labels WHERE status = 'held'")]
    assert scores == sorted(scores) and max(scores) <= min(held)   # the least confident are reviewed
    decide_pseudo(project, queue[0].uncoded_id, "11.05")
    assert len(pseudo_review_queue(project)) == 2
    row = project.conn.execute("SELECT code, split, source FROM real_texts WHERE text = ?", (queue[0].text,)).fetchone()
    assert row is not None and row[0] == "11.05" and row[2] in ("correction", "confirmation")


def test_status_counts_follow_labelling_review_and_undo(labelled_project, tmp_path):
    project, _, _ = labelled_project
    test_text = _a_test_text()
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS + [test_text]), text_column="answer")
    assert (pseudo_status(project).test, pseudo_status(project).unlabelled) == (0, len(TEXTS) + 1)
    # The same text then arrives coded, in the test split: it is never labelled and is counted apart.
    from engine.realdata.importing import import_real_texts

    import_real_texts(project, _write(tmp_path / "coded.csv", [f"{test_text},10.89"], header="text,code"),
                      text_column="text", code_column="code")
    before = pseudo_status(project)
    assert (before.uncoded, before.test, before.unlabelled) == (len(TEXTS) + 1, 1, len(TEXTS))
    assert before.pseudo == before.held == before.review == before.reviewed == 0
    label_uncoded(project, threshold=1.01, review=3)
    labelled = pseudo_status(project)
    assert (labelled.unlabelled, labelled.pseudo, labelled.review, labelled.held) == (0, 0, 3, len(TEXTS) - 3)
    first, second = pseudo_review_queue(project)[:2]
    mark_reviewed(project, first.uncoded_id, "11.05")
    mark_reviewed(project, second.uncoded_id, None)     # cannot be coded: keeps the label's own code
    row = project.conn.execute("SELECT status, code FROM pseudo_labels WHERE uncoded_id = ?",
                               (second.uncoded_id,)).fetchone()
    assert tuple(row) == ("reviewed", second.code)
    assert (pseudo_status(project).review, pseudo_status(project).reviewed) == (1, 2)
    reopen_review(project, first.uncoded_id)
    assert (pseudo_status(project).review, pseudo_status(project).reviewed) == (2, 1)
    assert first.uncoded_id in [item.uncoded_id for item in pseudo_review_queue(project)]


def test_marking_a_text_without_a_label_names_it_and_changes_nothing(labelled_project, tmp_path):
    project, _, _ = labelled_project
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS), text_column="answer")
    uncoded_id = project.conn.execute("SELECT MIN(id) FROM uncoded_texts").fetchone()[0]
    before = snapshot(project)
    with pytest.raises(StatcoderError, match=f"uncoded text {uncoded_id} has no label"):
        mark_reviewed(project, uncoded_id, "11.05")
    assert snapshot(project) == before


def test_labelling_chooses_its_threshold_on_validation(labelled_project, tmp_path):
    project, _, _ = labelled_project
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS), text_column="answer")
    result = label_uncoded(project, review=0, precision=0.8)
    assert result.threshold_from == "coder alone on real validation carve"
    assert result.threshold is None or 0 < result.threshold <= 1
    scores = dict(project.conn.execute("SELECT status, MIN(score) FROM pseudo_labels GROUP BY status"))
    if result.threshold is not None and "pseudo" in scores:
        assert scores["pseudo"] >= result.threshold


@pytest.mark.slow
def test_judge_labels_carry_the_judge_model_sha256(labelled_project, gemma_path, tmp_path):
    from engine.llm.backends import open_backend

    project, _, _ = labelled_project
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS[:4]), text_column="answer")
    with open_backend(gemma_settings(gemma_path)) as backend:
        judge = Judge(project, backend, config=JudgeConfig(k=3, orders=1, threshold=1.01))
        result = label_uncoded(project, judge=judge, threshold=0.0, review=0)
        sha = backend.model_sha256
    assert result.judged == 4 and result.judge_model_sha256 == sha
    rows = project.conn.execute("SELECT judge_model_sha256, judged, coder_code FROM pseudo_labels").fetchall()
    assert len(rows) == 4 and all(r[0] == sha and r[1] == 1 and r[2] for r in rows)


def test_texts_with_the_same_best_codes_are_judged_one_after_another(labelled_project, tmp_path, monkeypatch):
    """Across the whole backlog, not only within a committed chunk, so that the channel judge's card cache
    serves them; every text is still labelled once."""
    import engine.assist.pseudo as pseudo
    from engine.llm.judge import JudgeVerdict

    project, _, _ = labelled_project
    asked = []

    class Recording(Judge):
        def verdict(self, text, coder_top, **_):
            asked.append((coder_top[0][0], coder_top[1][0]))
            return JudgeVerdict.uniform([c for c, _ in coder_top[: self.k]])

    class Scripted:
        model_name, model_sha256, prompt_kind, name = "scripted", "scripted-sha", "completion", "scripted"

    monkeypatch.setattr(pseudo, "CHUNK", 4)       # many chunks: the order must hold across them
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS + [t + " and more" for t in TEXTS]),
                         text_column="answer")
    judge = Recording(project, Scripted(), config=JudgeConfig(k=3, threshold=1.01, method="letters"))
    result = label_uncoded(project, judge=judge, threshold=0.0, review=0)
    assert result.judged == len(asked) == 2 * len(TEXTS)
    assert len({code for code, _ in asked}) > 2
    assert asked == sorted(asked)                   # grouped by the two best codes
    assert project.conn.execute("SELECT COUNT(DISTINCT uncoded_id) FROM pseudo_labels").fetchone()[0] == 2 * len(TEXTS)


def test_a_cancelled_judged_labelling_relabels_without_asking_the_llm_again(labelled_project, tmp_path):
    """Every verdict is kept as it is made: a relabel after a cancel asks only what was not answered."""
    from engine.jobs import Cancelled, CancelToken
    from tests.engine.test_judgecheck import CardBackend, StopAfter

    project, _, _ = labelled_project
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS), text_column="answer")
    right = {"brewing of ale in a microbrewery": "11.05", "cheese making dairy farm": "10.51"}

    config = JudgeConfig(k=3, orders=1, threshold=1.01, method="channel")
    token = CancelToken()
    first = StopAfter(right, 3, token)
    with pytest.raises(Cancelled):
        label_uncoded(project, judge=Judge(project, first, config=config), threshold=0.0, review=0, cancel=token)
    assert first.calls == 3
    assert project.conn.execute("SELECT COUNT(*) FROM judge_verdicts").fetchone()[0] == 3
    again = CardBackend(right, skill=4.0)
    result = label_uncoded(project, judge=Judge(project, again, config=config), threshold=0.0, review=0, relabel=True)
    assert again.calls == len(TEXTS) - 3                 # the three answered before the cancel are not asked
    assert result.judged == len(TEXTS) and result.reused == 3
    assert "3 of them answered from earlier runs' verdicts" in result.lines()[0]
    labels = dict(project.conn.execute("SELECT u.text, p.code FROM pseudo_labels p JOIN uncoded_texts u"
                                       " ON u.id = p.uncoded_id").fetchall())
    fresh = CardBackend(right, skill=4.0)
    result = label_uncoded(project, judge=Judge(project, fresh, config=config), threshold=0.0, review=0, relabel=True)
    assert fresh.calls == 0 and result.reused == len(TEXTS)
    assert dict(project.conn.execute("SELECT u.text, p.code FROM pseudo_labels p JOIN uncoded_texts u"
                                     " ON u.id = p.uncoded_id").fetchall()) == labels   # the same labels


def test_a_judge_fitted_to_no_weight_is_not_asked_and_labels_as_if_it_were(labelled_project, tmp_path):
    """A fit that gives the judge weight 0 leaves every ranking to the coder: asking it would cost hours."""
    from engine.llm.judge import Combination
    from tests.engine.test_judgecheck import CardBackend

    project, _, _ = labelled_project
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS), text_column="answer")
    right = {"brewing of ale in a microbrewery": "11.05", "cheese making dairy farm": "10.51"}
    combination = Combination(weight=0.0, gate=0.0, temperature=0.8)

    def labels():
        return project.conn.execute("SELECT u.text, p.code, ROUND(p.score, 9), p.judged FROM pseudo_labels p"
                                    " JOIN uncoded_texts u ON u.id = p.uncoded_id ORDER BY u.id").fetchall()

    asking = CardBackend(right, skill=4.0)   # unfitted, the same combination: asked, and moves nothing
    unfitted = JudgeConfig(k=3, orders=1, threshold=1.01, method="channel", combination=combination)
    asked = label_uncoded(project, judge=Judge(project, asking, config=unfitted), threshold=0.0, review=0)
    assert asking.calls == len(TEXTS) and asked.judged == len(TEXTS) and asked.not_asked == 0
    before = labels()
    silent = CardBackend(right, skill=4.0)
    fitted = dataclasses.replace(unfitted, fitted=True)
    result = label_uncoded(project, judge=Judge(project, silent, config=fitted), threshold=0.0, review=0,
                           relabel=True)
    assert silent.calls == 0 and result.judged == 0 and result.not_asked == len(TEXTS)
    assert any("not put to the judge" in line for line in result.lines())
    assert [row[:3] for row in labels()] == [row[:3] for row in before]    # the same codes and scores
    assert {row[3] for row in labels()} == {0}                              # and none claims a verdict


def test_a_repeated_judge_fit_asks_the_llm_nothing_new(labelled_project):
    from engine.assist.judge import fit_judge
    from tests.engine.test_judgecheck import CardBackend

    project, codes, _ = labelled_project
    pairs = [(t, c) for t, c in project.conn.execute("SELECT text, code FROM real_texts ORDER BY id").fetchall()
             if c in set(codes)][:12]
    right = dict(pairs)
    first = CardBackend(right, skill=4.0)
    config = fit_judge(project, first, k=3, threshold=1.01, pairs=pairs, limit=8)
    assert first.calls == 8 and config.fit["asked"] == 8
    again = CardBackend(right, skill=4.0)
    repeat = fit_judge(project, again, k=3, threshold=1.01, pairs=pairs, limit=8)
    assert again.calls == 0 and repeat.fit["asked"] == 0 and repeat.fit["judged"] == 8
    assert repeat.combination == config.combination and repeat.label_threshold == config.label_threshold


def test_pseudo_labels_are_a_weighted_training_source_without_test_texts(labelled_project, tmp_path):
    from engine.coders.data import build_training_data
    from engine.realdata.importing import import_real_texts

    project, codes, trained = labelled_project
    test_text = _a_test_text()
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS + [test_text]), text_column="answer")
    label_uncoded(project, threshold=0.0, review=0)
    # The coded twin of one labelled text arrives in the test split after labelling.
    _write(tmp_path / "coded.csv", [f"{test_text},10.89"], header="text,code")
    import_real_texts(project, tmp_path / "coded.csv", text_column="text", code_column="code")
    without = build_training_data(project, DataMix(notes=1, real=1, codes=codes))
    twice = build_training_data(project, DataMix(notes=1, real=1, pseudo=2, codes=codes))
    assert twice.composition["counts"]["pseudo"] == len(TEXTS) and without.composition["counts"]["pseudo"] == 0
    assert twice.composition["train_lines"] == without.composition["train_lines"] + 2 * len(TEXTS)
    assert test_text not in {t for t, _ in twice.train}
    assert twice.composition["pseudo_provenance"] == [{"coder_sha256": trained.sha256, "judge_model_sha256": None,
                                                       "labels": len(TEXTS)}]
    # No real text: the validation carve comes from the mix, never from the pseudo-labels.
    zero = build_training_data(project, DataMix(notes=1, pseudo=1, codes=codes, validation_from="training"))
    assert not {t for t, _ in zero.validation} & set(TEXTS)


def test_cli_import_uncoded_label_and_train_on_pseudo_labels(labelled_project, tmp_path, capsys):
    import json

    from engine.cli import main

    project, _, _ = labelled_project
    path = str(project.path)
    assert main(["import-uncoded", "-p", path, str(_write(tmp_path / "u.csv", TEXTS)), "--text-column", "answer"]) == 0
    assert "imported 10 uncoded texts" in capsys.readouterr().out
    # The judge is asked for, not assumed (as on the Uncoded page): no LLM is needed to label.
    assert main(["label", "-p", path, "--threshold", "0", "--review", "0", "--json"]) == 0
    labelled = json.loads(capsys.readouterr().out)
    assert labelled["labelled"] == 10 and labelled["judged"] == 0 and labelled["judge_model_sha256"] is None
    assert main(["label", "-p", path, "--no-judge", "--threshold", "0", "--review", "0", "--json", "--relabel"]) == 0
    labelled = json.loads(capsys.readouterr().out)
    assert labelled["labelled"] == 10 and labelled["pseudo"] == 10 and labelled["judge_model_sha256"] is None
    assert main(["coders", "train", "-p", path, "--kind", "fasttext", "--notes", "1", "--pseudo", "1",
                 "--subset", "10,11", "--threads", "1", "--bucket", "20000", "--no-default", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["composition"]["counts"]["pseudo"] == 10 and out["composition"]["weights"]["pseudo"] == 1
    assert out["composition"]["pseudo_provenance"][0]["labels"] == 10


def test_without_real_text_the_threshold_is_chosen_on_lines_the_coder_has_not_seen(_nace_template, tmp_path):
    """A zero-real kNN joins its carve of held-out lines to its references after it is validated; the
    pseudo-label threshold is chosen on lines drawn the same way, so it must score them with the coder as it
    was before (it would read them back, look right and sure, and choose too low a threshold)."""
    from engine.assist.judge import choose_label_threshold, validation_pairs
    from engine.coders.ensemble import EnsembleCoder
    from engine.coders.registry import load_coder
    from engine.coders.train import train_coder

    path = tmp_path / "zero-real.statcoder"
    shutil.copy(_nace_template, path)
    project = Project.open(path)
    with project.transaction() as conn:
        conn.execute("DELETE FROM real_texts WHERE split = 'train'")
    codes = leaf_codes_under(project, ["10", "11"])
    mix = DataMix(notes=1, codes=codes, validation_from="training")
    knn = train_coder(project, mix, kind="knn", make_default=False)
    assert knn.params["fit"]["validation_joined_references"] > 0
    coder, _ = load_coder(project, knn.model_id)
    pairs, source = validation_pairs(project, codes=coder.codes)
    assert source == "held-out note lines"
    gold = [c for _, c in pairs]
    held = choose_label_threshold(coder.held_out().predict_many([t for t, _ in pairs], 1), gold, precision=0.9)
    seen = choose_label_threshold(coder.predict_many([t for t, _ in pairs], 1), gold, precision=0.9)
    assert held != seen                  # reading its references back, the coder looks surer than it is
    import_uncoded_texts(project, _write(tmp_path / "u.csv", TEXTS), text_column="answer")
    result = label_uncoded(project, model=knn.model_id, review=0, precision=0.9)
    assert result.threshold_from == "coder alone on held-out note lines" and result.threshold == held
    # the judge is fitted on the same lines, so it too sees the coder as it was (how many texts it is unsure of)
    from engine.assist.judge import DEFAULT_THRESHOLD, fit_judge
    from tests.engine.test_judge import BiasedBackend

    config = fit_judge(project, BiasedBackend(dict(pairs)), model=knn.model_id, method="letters", limit=3,
                       save=False)
    unsure = [p for p in coder.held_out().predict_many([t for t, _ in pairs], 5) if p[0][1] < DEFAULT_THRESHOLD]
    absorbed = [p for p in coder.predict_many([t for t, _ in pairs], 5) if p[0][1] < DEFAULT_THRESHOLD]
    assert config.fit["unsure"] == len(unsure) != len(absorbed)
    # an ensemble over that kNN scores held-out lines through its members' held-out views
    ft = train_coder(project, mix, kind="fasttext", make_default=False)
    ensemble = train_coder(project, mix, kind="ensemble", members=[knn.model_id, ft.model_id], combination="log",
                           weights=[1.0, 0.5], make_default=False)
    loaded, _ = load_coder(project, ensemble.model_id)
    view = loaded.held_out()
    assert isinstance(view, EnsembleCoder) and view is not loaded
    assert len(view.members[0].refs) == len(coder.held_out().refs) and view.members[1] is loaded.members[1]
    assert view.held_out() is view                       # nothing more to hold out
    project.close()
    clear_coder_cache()
