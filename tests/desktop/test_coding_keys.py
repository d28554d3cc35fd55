"""Coding like an annotation tool (issue 15, items 1, 5 and 7): the notes follow the highlighted code; Enter
accepts, Ctrl+S skips, Ctrl+U marks a text as one that cannot be coded, Ctrl+Z / Backspace undo, and the
recent decisions can be walked and changed; the code picker opens with an empty filter."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer

from tests.desktop.conftest import wait_jobs

CTRL = Qt.KeyboardModifier.ControlModifier


def decisions(window):
    return window.ctx.project.conn.execute(
        "SELECT text, chosen_code, kind, real_id FROM corrections ORDER BY id").fetchall()


def training_texts(window, text):
    return window.ctx.project.conn.execute(
        "SELECT code, source FROM real_texts WHERE text = ?", (text,)).fetchall()


@pytest.fixture
def panel(window, trained_path, qtbot):
    window.open_project(trained_path)
    window.show_page("code")
    return window.pages["code"].panel


def wait_suggestions(qtbot, panel, text):
    qtbot.waitUntil(lambda: panel.suggested_text == text and bool(panel.suggestions), timeout=5000)


def type_and_wait(qtbot, panel, text):
    qtbot.keyClicks(panel.text, text)
    wait_suggestions(qtbot, panel, text)


# item 1 ------------------------------------------------------------------------------------------
def test_the_notes_follow_the_top_code_while_typing_on(window, panel, qtbot):
    """Row 0 stays current when a longer text brings a new list: the notes must still change."""
    type_and_wait(qtbot, panel, "cider")
    first = panel.suggestions[0].code
    assert panel.details.code == first
    qtbot.keyClicks(panel.text, " or bakery making bread and cakes")
    text = "cider or bakery making bread and cakes"
    qtbot.waitUntil(lambda: panel.suggested_text == text and panel.suggestions[0].code != first, timeout=5000)
    top = panel.suggestions[0].code
    assert panel.table.currentRow() == 0
    assert panel.details.code == top
    assert panel.details.toPlainText().startswith(top)


def test_the_batch_review_queue_shows_the_notes_of_the_top_code_when_a_row_is_edited(window, trained_path, qtbot,
                                                                                      tmp_path):
    batch = coded_batch(window, trained_path, qtbot, tmp_path)
    panel = batch.panel
    wait_suggestions(qtbot, panel, batch.current.text)
    assert panel.details.code == panel.suggestions[0].code
    panel.text.setText("cider")
    wait_suggestions(qtbot, panel, "cider")
    first = panel.suggestions[0].code
    text = "cider or bakery making bread and cakes"
    qtbot.keyClicks(panel.text, text[len("cider"):])
    qtbot.waitUntil(lambda: panel.suggested_text == text and panel.suggestions[0].code != first, timeout=5000)
    assert panel.table.currentRow() == 0
    assert panel.details.code == panel.suggestions[0].code


# item 5: keys ------------------------------------------------------------------------------------
def test_skip_stores_nothing(window, panel, qtbot):
    type_and_wait(qtbot, panel, "bakery bread")
    qtbot.keyClick(panel.text, Qt.Key.Key_S, CTRL)
    assert decisions(window) == []
    assert panel.text.text() == "" and "Skipped" in panel.status.text()


def test_cannot_be_coded_is_stored_as_such_and_never_trains(window, panel, qtbot):
    type_and_wait(qtbot, panel, "bakery bread and car repairs")
    qtbot.keyClick(panel.text, Qt.Key.Key_U, CTRL)
    assert decisions(window) == [("bakery bread and car repairs", None, "uncodable", None)]
    assert training_texts(window, "bakery bread and car repairs") == []
    assert panel.history.item(0).text().startswith("cannot be coded")


def test_undo_removes_the_decision_and_its_training_text(window, panel, qtbot):
    type_and_wait(qtbot, panel, "bakery bread")
    qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    assert training_texts(window, "bakery bread") == [("10.71", "confirmation")]
    qtbot.keyClick(panel.text, Qt.Key.Key_Z, CTRL)
    assert decisions(window) == []
    assert training_texts(window, "bakery bread") == []
    assert panel.text.text() == "bakery bread"   # back to be decided again
    assert panel.history.count() == 0
    # Backspace in an empty field undoes too
    wait_suggestions(qtbot, panel, "bakery bread")
    qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    assert len(decisions(window)) == 1 and panel.text.text() == ""
    qtbot.keyClick(panel.text, Qt.Key.Key_Backspace)
    assert decisions(window) == []


def test_recent_decisions_can_be_walked_and_changed(window, panel, qtbot):
    for text in ("bakery bread", "brewery beer"):
        type_and_wait(qtbot, panel, text)
        qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    assert [d[0] for d in decisions(window)] == ["bakery bread", "brewery beer"]
    qtbot.keyClick(panel.text, Qt.Key.Key_H, CTRL)
    assert panel.history.hasFocus() and panel.history.currentRow() == 0
    qtbot.keyClick(panel.history, Qt.Key.Key_Down)
    assert panel.history.currentRow() == 1   # "bakery bread"

    def drive(picker):
        def pick():
            assert picker.search.text() == ""   # an empty filter, listing the decision's code
            assert picker.chosen == "10.71"
            picker.search.setText("cocoa")
            picker.run_search()
            picker.accept()
        QTimer.singleShot(0, pick)

    panel.open_picker_hook = drive
    qtbot.keyClick(panel.history, Qt.Key.Key_Return)
    assert decisions(window)[0][:3] == ("bakery bread", "10.82", "correction")
    assert training_texts(window, "bakery bread") == [("10.82", "correction")]
    assert panel.history.item(1).text().startswith("10.82")
    qtbot.keyClick(panel.history, Qt.Key.Key_U, CTRL)
    assert decisions(window)[0][1:] == (None, "uncodable", None)
    assert training_texts(window, "bakery bread") == []
    qtbot.keyClick(panel.history, Qt.Key.Key_Delete)
    assert [d[0] for d in decisions(window)] == ["brewery beer"]
    assert window.focusWidget() is panel.history
    qtbot.keyClick(panel.history, Qt.Key.Key_Escape)
    assert window.focusWidget() is panel.text


def test_recent_decisions_survive_a_restart(window, panel, qtbot, trained_path):
    type_and_wait(qtbot, panel, "bakery bread")
    qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    window.close_project()
    window.open_project(trained_path)
    assert panel.history.count() == 1 and "bakery bread" in panel.history.item(0).text()
    qtbot.keyClick(panel.text, Qt.Key.Key_Z, CTRL)
    assert decisions(window) == []


def test_ctrl_k_opens_with_an_empty_filter_listing_the_suggestions(window, panel, qtbot):
    type_and_wait(qtbot, panel, "bakery bread")
    seen = {}

    def drive(picker):
        def look():
            seen["search"] = picker.search.text()
            seen["listed"] = [picker.results.item(i).text().split()[0] for i in range(picker.results.count())]
            picker.reject()
        QTimer.singleShot(0, look)

    panel.open_picker_hook = drive
    qtbot.keyClick(panel.text, Qt.Key.Key_K, CTRL)
    assert seen["search"] == ""
    assert seen["listed"] == [s.code for s in panel.suggestions]
    assert decisions(window) == []


def test_meaningless_input_gets_no_suggestion_and_says_why(window, panel, qtbot):
    for text in ("1", "asdf"):
        panel.text.setText(text)
        qtbot.waitUntil(lambda: panel.suggested_text == text, timeout=5000)
        assert panel.suggestions == []
        assert "No suggestions" in panel.status.text()
        qtbot.keyClick(panel.text, Qt.Key.Key_Return)
        assert decisions(window) == []


# the batch review queue --------------------------------------------------------------------------
def coded_batch(window, trained_path, qtbot, tmp_path, texts=None, threshold=0.99):
    import csv

    window.open_project(trained_path)
    page = window.pages["code"]
    page.tabs.setCurrentWidget(page.batch)
    batch = page.batch
    source = tmp_path / "answers.csv"
    texts = texts or ["bakery bread", "chocolate", "brewery beer", "fresh fish processing", "sugar refining",
                      "cider", "1"]
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "answer"])
        writer.writerows([(i, t) for i, t in enumerate(texts)])
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    batch.threshold.setValue(threshold)
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    return batch


def test_batch_queue_skip_uncodable_undo(window, trained_path, qtbot, tmp_path):
    import csv

    batch = coded_batch(window, trained_path, qtbot, tmp_path)
    queue = batch.queue
    assert queue.total >= 3
    first = batch.current
    wait_suggestions(qtbot, batch.panel, first.text)
    qtbot.keyClick(batch.panel.text, Qt.Key.Key_S, CTRL)          # skip: the row stays in the queue
    assert queue.done == 0 and batch.current.row != first.row
    second = batch.current
    wait_suggestions(qtbot, batch.panel, second.text)
    qtbot.keyClick(batch.panel.text, Qt.Key.Key_U, CTRL)          # cannot be coded
    assert queue.decisions == {second.row: "<uncodable>"}
    third = batch.current
    qtbot.keyClick(batch.panel.text, Qt.Key.Key_Z, CTRL)          # undo: the row comes back
    assert queue.decisions == {} and batch.current.row == second.row
    assert batch.panel.text.text() == second.text
    assert window.ctx.project.conn.execute("SELECT COUNT(*) FROM corrections").fetchone()[0] == 0
    wait_suggestions(qtbot, batch.panel, second.text)
    qtbot.keyClick(batch.panel.text, Qt.Key.Key_U, CTRL)
    assert batch.current.row == third.row
    # the skipped row comes round again once the rows after it are done
    while batch.current is not None and batch.current.row != first.row:
        qtbot.keyClick(batch.panel.text, Qt.Key.Key_U, CTRL)
    assert batch.current is not None and batch.current.row == first.row
    out = batch.write_reviewed()
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert rows[second.row - 1]["status"] == "uncodable" and rows[second.row - 1]["code"] == ""


def test_the_meaningless_row_is_never_auto_coded(window, trained_path, qtbot, tmp_path):
    batch = coded_batch(window, trained_path, qtbot, tmp_path, threshold=0.0)
    assert batch.last_result.meaningless == 1
    assert [item.text for item in batch.queue.items] == ["1"]


def test_coding_the_file_again_asks_before_wiping_the_review(window, trained_path, qtbot, tmp_path, monkeypatch):
    import desktop.messages

    batch = coded_batch(window, trained_path, qtbot, tmp_path)
    wait_suggestions(qtbot, batch.panel, batch.current.text)
    qtbot.keyClick(batch.panel.text, Qt.Key.Key_Return)
    assert batch.queue.done == 1
    asked = []
    monkeypatch.setattr(desktop.messages, "ask_yes_no", lambda parent, title, q: asked.append(q) or False)
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert len(asked) == 1 and "1 of" in asked[0]
    assert batch.queue.done == 1 and batch.queue.state_path.exists()
    monkeypatch.setattr(desktop.messages, "ask_yes_no", lambda parent, title, q: True)
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert batch.queue.done == 0


# item 3 ------------------------------------------------------------------------------------------
def test_a_cp1252_file_is_batch_coded_with_the_encoding_choice(window, trained_path, qtbot, tmp_path):
    window.open_project(trained_path)
    page = window.pages["code"]
    page.tabs.setCurrentWidget(page.batch)
    batch = page.batch
    source = tmp_path / "windows.csv"
    source.write_bytes("id;answer\n1;pâtisserie bakery bread\n2;brewery beer\n".replace(";", ",").encode("cp1252"))
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    message = window.messages.text
    assert "cp1252" in message and "Encoding" in message and "--encoding" not in message
    batch.encoding.setCurrentText("cp1252")
    assert batch.text_column.currentText() == "answer"
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert batch.last_result is not None and batch.last_result.rows == 2
