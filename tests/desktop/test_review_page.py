"""Review page through real widgets: filters, keyboard accept/reject/edit/relabel, flag reasons, bulk actions."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from engine.store.project import Project

SAMPLES = [
    ("10.71", "fresh bread and rolls from our bakery", "zero-shot"),
    ("10.71", "baking of cakes and pastries", "zero-shot"),
    ("10.72", "rusks and biscuits factory", "keywords"),
    ("10.82", "chocolate and sweets production", "zero-shot"),
    ("10.82", "bakery", "contrastive"),
]


@pytest.fixture
def review_path(nace_path):
    """Five synthetic samples in one run; two flagged by a curation run (test data written directly)."""
    with Project.open(nace_path) as project, project.transaction() as conn:
        run = conn.execute("INSERT INTO generation_runs (name, strategies, codes, quota, seed, params)"
                           " VALUES ('test run', '[]', '[]', 2, 0, '{}')").lastrowid
        ids = [conn.execute(
            "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash, seed,"
            " model_sha256, backend, params) VALUES (?, ?, ?, ?, ?, 'u', 'v1', 'h', 0, 'sha', 'test', '{}')",
            (run, code, text, text.lower(), strategy)).lastrowid for code, text, strategy in SAMPLES]
        cur = conn.execute("INSERT INTO curation_runs (params) VALUES ('{\"reject\": [\"excludes_conflict\"]}')").lastrowid
        conn.execute("UPDATE samples SET curation_id = ?", (cur,))
        conn.execute("INSERT INTO sample_flags (sample_id, curation_id, rule, reason, suggested_code)"
                     " VALUES (?, ?, 'label_check', 'own code not in the top 10; predicted 10.71', '10.71')",
                     (ids[4], cur))
        conn.execute("INSERT INTO sample_flags (sample_id, curation_id, rule, reason) VALUES (?, ?, 'garbage', 'too short')",
                     (ids[4], cur))
    return nace_path


@pytest.fixture
def page(window, review_path, answer):
    window.open_project(review_path)
    window.show_page("review")
    return window.pages["review"]


def statuses(window):
    return [r[0] for r in window.ctx.project.conn.execute("SELECT status || '/' || status_by FROM samples ORDER BY id")]


def test_filters_and_flag_reasons(page, qtbot):
    assert page.table.rowCount() == 5
    assert "5 samples match" in page.count_label.text()
    qtbot.keyClicks(page.code_filter, "10.82")
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=2000)
    page.code_filter.clear()
    page.flag_filter.setCurrentText("label_check")
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=2000)
    assert page.table.item(0, 6).text() == "bakery"
    assert "label_check, garbage" == page.table.item(0, 5).text()
    html = page.details.toPlainText()
    assert "own code not in the top 10; predicted 10.71" in html and "too short" in html
    page.flag_filter.setCurrentIndex(0)
    page.strategy_filter.setCurrentText("zero-shot")
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=2000)


def test_accept_reject_edit_relabel_from_the_keyboard(window, page, qtbot):
    page.table.setFocus()
    page.table.setCurrentCell(0, 0)
    qtbot.keyClick(page.table, Qt.Key.Key_R)
    assert statuses(window)[0] == "rejected/user"
    assert page.table.currentRow() == 1            # moves on to the next sample
    qtbot.keyClick(page.table, Qt.Key.Key_A)
    assert statuses(window)[1] == "accepted/user"
    page.table.setCurrentCell(0, 0)
    qtbot.keyClick(page.table, Qt.Key.Key_U)
    assert statuses(window)[0] == "accepted/default"
    page.table.setCurrentCell(4, 0)
    page.relabel_current("10.71")
    page.table.setCurrentCell(4, 0)
    page.edit_current("bakery selling bread")
    row = window.ctx.project.conn.execute(
        "SELECT code, text, original_code, original_text, status_by FROM samples ORDER BY id DESC LIMIT 1").fetchone()
    assert row == ("10.71", "bakery selling bread", "10.82", "bakery", "user")
    assert "Originally: 10.82 · bakery" in page.details.toPlainText()


def test_bulk_reject_on_a_filter_asks_first(window, page, qtbot, monkeypatch):
    import desktop.pages.review as review

    answers = []
    monkeypatch.setattr(review, "ask_yes_no", lambda parent, title, q: answers.append(title) or True)
    page.code_filter.setText("10.71")
    page.reload()
    qtbot.mouseClick(page.bulk_reject, Qt.MouseButton.LeftButton)
    assert answers == ["Reject 2 samples"]
    assert statuses(window) == ["rejected/user", "rejected/user", "accepted/default", "accepted/default",
                                "accepted/default"]


def test_a_relabelled_sample_shows_the_code_it_trains(window, nace_path, qtbot):
    """Curation relabels an excludes copy of 10.71 to 10.72: the table and the details say so."""
    from engine.curate import CurationOptions, curate

    with Project.open(nace_path) as project, project.transaction() as conn:
        run = conn.execute("INSERT INTO generation_runs (name, strategies, codes, quota, seed, params)"
                           " VALUES ('test run', '[]', '[\"10.71\"]', 2, 0, '{}')").lastrowid
        conn.execute(
            "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash, seed,"
            " model_sha256, backend, params) VALUES (?, '10.71', 'manufacture of dry bakery products',"
            " 'manufacture of dry bakery products', 'notes', 'u', 'v1', 'h', 0, 'sha', 'test', '{}')", (run,))
    with Project.open(nace_path) as project:
        curate(project, options=CurationOptions(label_check=None))
    window.open_project(nace_path)
    window.show_page("review")
    page = window.pages["review"]
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=2000)
    assert page.table.item(0, 1).text() == "10.71 → 10.72"
    assert "it trains 10.72, not 10.71" in page.details.toPlainText()
