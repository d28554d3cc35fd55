"""Issue 15, item 7 (the pieces on the coding pages): plurals, a wide edit dialog, confused pairs with
titles that open, tooltips for n.e.c., ECE and macro-F1."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from tests.desktop.conftest import wait_jobs
from tests.desktop.test_review_page import review_path  # noqa: F401 - fixture


def test_one_code_matches(window, qtbot, nace_path):
    window.open_project(nace_path)
    page = window.pages["classification"]
    window.show_page("classification")
    qtbot.keyClicks(page.search, "perry")
    qtbot.waitUntil(lambda: page.results.count() == 1, timeout=3000)
    assert page.result_count.text().startswith("1 code matches")


def test_one_sample_matches(window, qtbot, review_path, answer):  # noqa: F811
    window.open_project(review_path)
    window.show_page("review")
    page = window.pages["review"]
    qtbot.keyClicks(page.text_filter, "rusks")
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=3000)
    assert page.count_label.text().startswith("1 sample matches")


def test_the_edit_dialog_is_wide(window, qtbot, review_path, answer):  # noqa: F811
    window.open_project(review_path)
    window.show_page("review")
    page = window.pages["review"]
    page.table.setCurrentCell(0, 0)
    seen = {}

    def measure():
        dialog = QApplication.activeModalWidget()
        seen["width"] = dialog.width() if dialog is not None else None
        if dialog is not None:
            dialog.reject()

    QTimer.singleShot(200, measure)
    page.edit_current()
    assert seen["width"] is not None and seen["width"] >= 500


def test_confused_pairs_have_titles_and_open_the_code(window, qtbot, trained_path):
    window.open_project(trained_path)
    window.show_page("train")
    page = window.pages["train"]
    page.table.setCurrentCell(0, 0)
    page.evaluate_selected()
    wait_jobs(qtbot, window)
    assert page.confused.rowCount() > 0
    gold = page.confused.item(0, 0)
    code = gold.data(Qt.ItemDataRole.UserRole)
    title = window.ctx.project.conn.execute("SELECT title FROM codes WHERE code = ?", (code,)).fetchone()[0]
    assert gold.text() == f"{code}  {title}"
    page.confused.cellDoubleClicked.emit(0, 1)
    predicted = page.confused.item(0, 1).data(Qt.ItemDataRole.UserRole)
    assert window.stack.currentWidget() is window.pages["classification"]
    assert window.pages["classification"].details.code == predicted


def test_tooltips_explain_the_terms(window, qtbot, trained_path):
    window.open_project(trained_path)
    page = window.pages["train"]
    tips = {page.table.verticalHeaderItem(r).text(): page.table.verticalHeaderItem(r).toolTip()
            for r in range(page.table.rowCount())}
    assert "calibration" in tips["ECE"] and "average" in tips["macro-F1"]
    panel = window.pages["code"].panel
    window.show_page("code")
    panel.text.setText("other food products")
    qtbot.waitUntil(lambda: panel.suggested_text == "other food products" and bool(panel.suggestions), timeout=5000)
    titles = [panel.table.item(r, 2) for r in range(panel.table.rowCount())]
    nec = [t for t in titles if "n.e.c." in t.text()]
    assert nec and all("not elsewhere classified" in t.toolTip().casefold() for t in nec)


def test_the_relabel_picker_opens_with_an_empty_filter_listing_the_current_code(window, qtbot, review_path, answer):  # noqa: F811
    window.open_project(review_path)
    window.show_page("review")
    page = window.pages["review"]
    page.table.setCurrentCell(0, 0)
    current = page.rows[0].code
    seen = {}

    def look():
        picker = QApplication.activeModalWidget()
        seen["search"] = picker.search.text()
        seen["listed"] = [picker.results.item(i).text().split()[0] for i in range(picker.results.count())]
        picker.reject()

    QTimer.singleShot(200, look)
    page.relabel_current()
    assert seen == {"search": "", "listed": [current]}
