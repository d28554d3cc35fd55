"""Evaluation metrics against hand-computed values on a tiny hierarchy, and a stored evaluation with its report."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.evaluate.metrics import (Hierarchy, auto_coding_curve, choose_threshold, compute_metrics, evaluate_model,
                             fallback_scores, reliability)
from engine.evaluate.report import write_report
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.data import DataMix
from engine.classification import leaf_codes_under

#  A ── A1 ── a11, a12          B ── B1 ── b11
#    └─ A2 ── a21
TREE = Hierarchy(
    parent={"A": None, "A1": "A", "A2": "A", "a11": "A1", "a12": "A1", "a21": "A2", "B": None, "B1": "B", "b11": "B1"},
    level={"A": 1, "B": 1, "A1": 2, "A2": 2, "B1": 2, "a11": 3, "a12": 3, "a21": 3, "b11": 3},
    level_names=["section", "group", "class"])
GOLD = ["a11", "a11", "a12", "a21", "b11"]
PREDS = [
    [("a11", 0.9), ("a12", 0.05)],                 # right
    [("a12", 0.6), ("a11", 0.3)],                  # wrong, sibling
    [("a12", 0.4), ("a11", 0.35), ("a21", 0.1)],   # right, unsure
    [("a11", 0.5), ("a21", 0.45)],                 # wrong, right section only
    [("b11", 0.8), ("a11", 0.1)],                  # right
]


def test_accuracy_per_level_and_macro_f1():
    r = compute_metrics(GOLD, PREDS, TREE, fallback_threshold=0.55)
    assert r.n == 5 and r.top1 == pytest.approx(0.6) and r.top5 == pytest.approx(1.0)
    assert r.per_level == pytest.approx({"section": 1.0, "group": 0.8, "class": 0.6})
    scores = {s.code: s for s in r.per_code}
    assert (scores["a11"].precision, scores["a11"].recall, scores["a11"].f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (scores["a12"].precision, scores["a12"].recall, scores["a12"].f1) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (scores["a21"].f1, scores["a21"].support, scores["a21"].predicted) == (0.0, 1, 0)
    assert scores["b11"].f1 == pytest.approx(1.0)
    assert r.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0 + 1) / 4)
    assert [(p.gold, p.predicted, p.count, p.siblings) for p in r.confused] == [
        ("a11", "a12", 1, True), ("a21", "a11", 1, False)]


def test_reliability_bins_and_ece():
    conf = [0.9, 0.6, 0.4, 0.5, 0.8]
    correct = [True, False, True, False, True]
    bins, ece = reliability(conf, correct)
    assert len(bins) == 10 and [b.count for b in bins] == [0, 0, 0, 0, 1, 1, 1, 0, 1, 1]
    assert bins[6].confidence == pytest.approx(0.6) and bins[6].accuracy == 0.0
    assert ece == pytest.approx((0.1 + 0.6 + 0.6 + 0.5 + 0.2) / 5)
    assert compute_metrics(GOLD, PREDS, TREE).ece == pytest.approx(ece)


def test_auto_coding_curve_and_threshold_chooser():
    correct = [True, False, True, False, True]
    curve = auto_coding_curve([0.9, 0.6, 0.4, 0.5, 0.8], correct)
    at = {p.threshold: p for p in curve}
    assert (at[0.5].coverage, at[0.5].error, at[0.5].n_auto) == pytest.approx((0.8, 0.5, 4))
    assert (at[0.0].coverage, at[0.0].error) == pytest.approx((1.0, 0.4))
    assert at[0.95].n_auto == 0 and at[0.95].error is None
    best = choose_threshold(curve, 0.05)
    assert (best.threshold, best.coverage, best.error) == pytest.approx((0.61, 0.4, 0.0))
    assert choose_threshold(curve, 0.45).threshold == 0.0                     # everything: 40 % error
    looser = choose_threshold(curve, 0.35)                                     # 0.8 coverage has 50 % error
    assert (looser.threshold, looser.coverage, looser.error) == pytest.approx((0.51, 0.6, 1 / 3))
    r = compute_metrics(GOLD, PREDS, TREE)
    assert r.thresholds["prob@0.05"]["threshold"] == pytest.approx(0.61)
    assert r.thresholds["margin@0.05"]["threshold"] == pytest.approx(0.31)
    assert r.thresholds["margin@0.05"]["coverage"] == pytest.approx(0.4)


def test_fallback_to_the_parent_with_most_probability():
    fb = fallback_scores(GOLD, PREDS, TREE, 0.55)
    assert (fb.n_unsure, fb.share_unsure) == (2, pytest.approx(0.4))
    assert fb.leaf_accuracy_unsure == pytest.approx(0.5)      # the 0.4 one is right, the 0.5 one wrong
    assert fb.parent_accuracy_unsure == pytest.approx(0.5)    # A1 right for a12; A1 wrong for a21
    assert fb.accuracy_with_fallback == pytest.approx(3 / 5)


def test_empty_predictions_count_as_wrong():
    r = compute_metrics(["a11", "b11"], [[], [("b11", 1.0)]], TREE)
    assert r.top1 == pytest.approx(0.5) and r.per_level["section"] == pytest.approx(0.5)


def test_evaluate_model_stores_a_row_and_writes_the_report(nace_project, tmp_path):
    codes = leaf_codes_under(nace_project, ["11"])
    params = dataclasses.replace(DEFAULT_PARAMS, bucket=20_000)
    trained = train_fasttext(nace_project, DataMix(notes=1, real=1, codes=codes), TrainOptions(params=params))
    result, row_id = evaluate_model(nace_project, codes=codes)
    n_test = nace_project.conn.execute(
        f"SELECT COUNT(*) FROM real_texts WHERE split = 'test' AND code IN ({','.join('?' * len(codes))})",
        codes).fetchone()[0]
    assert result.n == n_test > 20
    assert list(result.per_level) == ["section", "division", "group", "class"]
    assert result.per_level["class"] == pytest.approx(result.top1)
    assert result.per_level["section"] == 1.0 and 0.3 < result.top1 <= result.top5 <= 1
    stored = nace_project.conn.execute("SELECT model_id, dataset, metrics FROM evaluations WHERE id = ?",
                                       (row_id,)).fetchone()
    assert stored[0] == trained.model_id and "test" in stored[1]
    assert json.loads(stored[2])["top1"] == pytest.approx(result.top1)
    assert all(s.train_count is not None for s in result.per_code)
    page = write_report(result, tmp_path / "report", title="t")
    html = page.read_text()
    assert "Most-confused pairs" in html and "f1_vs_train.png" in html
    for name in ("per_level", "auto_coding", "confused", "f1_vs_train", "reliability"):
        assert (tmp_path / "report" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latest_evaluations_parse_each_stored_evaluation_once_and_never_go_stale(project, monkeypatch, tmp_path):
    """The parsed metrics are kept (the desktop's worker reads them before the GUI thread asks), yet a new
    evaluation, a new report path and another project at the same path are always seen."""
    import json

    import engine.evaluate.history as history
    from engine.evaluate.metrics import set_report_path
    from engine.store.project import Project

    def metrics(top1: float) -> str:
        return json.dumps({"n": 10, "top1": top1, "top5": 0.9, "macro_f1": 0.5})

    with project.transaction() as conn:
        conn.execute("INSERT INTO models (id, name, kind, path, sha256, params, data) "
                     "VALUES (1, 'm', 'fasttext', 'x', 'h', '{}', '{}')")
        first = conn.execute("INSERT INTO evaluations (model_id, dataset, metrics) VALUES (1, 'real-test', ?)",
                             (metrics(0.4),)).lastrowid
    parsed = []
    real = history.evaluation_from_dict
    monkeypatch.setattr(history, "evaluation_from_dict", lambda data: parsed.append(data["top1"]) or real(data))
    assert history.latest_evaluations(project)[1].result.top1 == 0.4
    assert history.latest_evaluations(project)[1].result.top1 == 0.4
    assert parsed == [0.4]                                   # parsed once
    set_report_path(project, first, "/reports/a.html")
    assert history.latest_evaluations(project)[1].report_path == "/reports/a.html"
    with project.transaction() as conn:
        conn.execute("INSERT INTO evaluations (model_id, dataset, metrics) VALUES (1, 'real-test', ?)", (metrics(0.7),))
    assert history.latest_evaluations(project)[1].result.top1 == 0.7
    assert parsed == [0.4, 0.7]

    path = project.path
    project.close_all()
    path.unlink()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with Project.create(path) as other:                      # a new project file at the same path
        with other.transaction() as conn:
            conn.execute("INSERT INTO models (id, name, kind, path, sha256, params, data) "
                         "VALUES (1, 'm', 'fasttext', 'x', 'h', '{}', '{}')")
            conn.execute("INSERT INTO evaluations (id, model_id, dataset, metrics, created) "
                         "VALUES (1, 1, 'real-test', ?, '2030-01-01T00:00:00Z')", (metrics(0.1),))
        assert history.latest_evaluations(other)[1].result.top1 == 0.1
