"""The coding panel through real widgets: type, see the top 5, arrows and Enter, Ctrl+K to pick another code."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer

from tests.desktop.conftest import wait_jobs


def decisions(window):
    return window.ctx.project.conn.execute(
        "SELECT text, suggested_code, chosen_code, kind, model_id FROM corrections ORDER BY id").fetchall()


@pytest.fixture
def panel(window, trained_path, qtbot):
    window.open_project(trained_path)
    window.show_page("code")
    return window.pages["code"].panel


def type_and_wait(qtbot, panel, text):
    qtbot.keyClicks(panel.text, text)
    qtbot.waitUntil(lambda: panel.suggested_text == text and bool(panel.suggestions), timeout=5000)


def test_type_see_top5_arrows_and_enter_confirms(window, panel, qtbot):
    assert panel.model_label.text().startswith("Coder: fastText 10-11 (test) (model 1, fasttext")
    type_and_wait(qtbot, panel, "bakery bread")
    assert panel.table.rowCount() == 5
    assert panel.table.item(0, 1).text() == "10.71"
    assert panel.table.item(0, 0).text().endswith("%")
    assert panel.table.item(0, 3).text() == "C › 10 › 10.7"
    assert panel.details.code == "10.71"
    qtbot.keyClick(panel.text, Qt.Key.Key_Down)
    assert panel.table.currentRow() == 1
    assert panel.details.code == panel.suggestions[1].code
    qtbot.keyClick(panel.text, Qt.Key.Key_Up)
    assert panel.table.currentRow() == 0
    qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    assert decisions(window) == [("bakery bread", "10.71", "10.71", "confirmation", 1)]
    real = window.ctx.project.conn.execute("SELECT code, split, source FROM real_texts WHERE text = 'bakery bread'")
    assert real.fetchall() == [("10.71", "train", "confirmation")]
    assert panel.text.text() == "" and panel.history.count() == 1
    assert "confirmation" in panel.status.text()


def test_choosing_another_row_or_code_is_a_correction(window, panel, qtbot):
    type_and_wait(qtbot, panel, "bakery bread")
    qtbot.keyClick(panel.text, Qt.Key.Key_Down)
    second = panel.suggestions[1].code
    qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    assert decisions(window)[-1] == ("bakery bread", "10.71", second, "correction", 1)

    type_and_wait(qtbot, panel, "sugar")

    def drive(picker):
        def pick():
            picker.search.setText("cocoa")
            picker.run_search()
            picker.accept()
        QTimer.singleShot(0, pick)

    panel.open_picker_hook = drive
    qtbot.keyClick(panel.text, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    text, suggested, chosen, kind, _model = decisions(window)[-1]
    assert (text, chosen) == ("sugar", "10.82")
    assert kind == ("confirmation" if suggested == "10.82" else "correction")


def test_enter_before_fresh_suggestions_does_not_accept_a_stale_list(window, panel, qtbot):
    type_and_wait(qtbot, panel, "bread")
    panel.text.setText("bread and cakes")   # no suggestions for this text yet
    panel.accept_current()
    assert decisions(window) == []
    qtbot.waitUntil(lambda: panel.suggested_text == "bread and cakes", timeout=5000)
    panel.accept_current()
    assert len(decisions(window)) == 1


def test_without_a_trained_model_the_panel_says_so(window, nace_path):
    window.open_project(nace_path)
    panel = window.pages["code"].panel
    assert not panel.text.isEnabled()
    assert "No trained coder yet" in panel.model_label.text()


def test_batch_code_a_file_then_walk_the_review_queue(window, trained_path, qtbot, tmp_path):
    import csv

    window.open_project(trained_path)
    page = window.pages["code"]
    page.tabs.setCurrentWidget(page.batch)
    batch = page.batch
    source = tmp_path / "answers.csv"
    texts = ["bakery bread", "chocolate", "brewery beer", "xyz qqq", "fresh fish processing", "sugar refining"]
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "answer"])
        writer.writerows([(i, t) for i, t in enumerate(texts)])
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    assert batch.text_column.currentText() == "answer"
    batch.threshold.setValue(0.95)
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    result = batch.last_result
    assert result.rows == 6 and result.auto + result.review == 6 and result.review >= 1
    assert batch.queue.total == result.review
    first = batch.current
    assert batch.panel.text.text() == first.text
    qtbot.waitUntil(lambda: batch.panel.suggested_text == first.text and bool(batch.panel.suggestions), timeout=5000)
    chosen = batch.panel.suggestions[0].code
    qtbot.keyClick(batch.panel.text, Qt.Key.Key_Return)
    assert batch.queue.decisions == {first.row: chosen}
    assert f"1 of {result.review} reviewed" in batch.queue_label.text()
    # progress is saved: a fresh queue on the same file resumes after the decided row
    from engine.assist.review_queue import ReviewQueue

    again = ReviewQueue(result.out_path, text_column="answer")
    assert again.done == 1 and (again.next_pending() is None or again.next_pending().row != first.row)
    out = batch.write_reviewed()
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert rows[first.row - 1]["status"] == "reviewed" and rows[first.row - 1]["code"] == chosen
    assert window.ctx.project.conn.execute("SELECT COUNT(*) FROM corrections").fetchone()[0] == 1
