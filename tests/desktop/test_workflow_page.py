"""The Project page's workflow checklist with its next-step button, and F1 help for every page."""

from __future__ import annotations


import pytest
from PySide6.QtCore import Qt

from desktop.help import GLOSSARY, PAGES


def test_an_empty_project_shows_the_checklist_and_the_next_step_opens_its_page(window, qtbot, tmp_path):
    window.new_project(tmp_path / "new.statcoder")
    window.show_page("project")
    page = window.pages["project"]
    assert page.workflow_box.isVisible()
    assert [s.key for s in page.steps] == ["classification", "realdata", "llm", "generation", "review", "coder",
                                           "evaluation"]
    marks = [page.step_rows[s.key][0].text() for s in page.steps]
    assert marks[0] == "➜" and set(marks[1:]) == {"○"}
    assert page.next_button.text().startswith("Next: Import a classification")
    qtbot.mouseClick(page.next_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["classification"]


def test_the_checklist_follows_the_project_with_its_numbers(window, qtbot, trained_path):
    window.open_project(trained_path)
    window.show_page("project")
    page = window.pages["project"]
    rows = {key: (mark.text(), detail.text()) for key, (mark, _t, detail, _b) in page.step_rows.items()}
    assert rows["classification"][0] == "✔" and "996 codes" in rows["classification"][1]
    assert rows["realdata"][0] == "✔" and "15,957 texts" in rows["realdata"][1]
    assert rows["coder"][0] == "✔" and "coding uses #1" in rows["coder"][1]
    assert page.next.key == "llm" and "Add a generation model" in page.next_button.text()
    qtbot.mouseClick(page.next_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["models"]
    page.step_rows["evaluation"][3].click()            # any step's own button opens its page
    assert window.stack.currentWidget() is window.pages["train"]


@pytest.mark.parametrize("key", list(PAGES))
def test_f1_opens_the_help_of_the_current_page(window, qtbot, nace_path, key):
    window.open_project(nace_path)
    window.show_page(key)
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialog = window.help_dialog
    assert dialog is not None and dialog.page == key and dialog.isVisible()
    assert PAGES[key][1][:60] in dialog.text
    for term in ("n.e.c.", "ECE", "macro-F1", "auto-coding", "top-5", "excludes"):
        assert GLOSSARY[term][:40] in dialog.text            # every term explained, the page's first
    dialog.close()


def test_the_code_page_help_lists_the_coding_keys_from_desktop_keys(window, qtbot):
    from desktop.keys import CODING_KEYS

    window.show_page("code")
    text = window.show_help().text
    for key in CODING_KEYS:                                  # the one table the panel binds and the README shows
        assert key.keys in text and key.action[:40] in text


def test_the_train_page_explains_its_metrics_in_tooltips(window, trained_path):
    window.open_project(trained_path)
    table = window.pages["train"].table
    tips = {table.verticalHeaderItem(r).text(): table.verticalHeaderItem(r).toolTip() for r in range(table.rowCount())}
    assert tips["ECE"] == GLOSSARY["ECE"] and tips["macro-F1"] == GLOSSARY["macro-F1"]
    assert "threshold" in tips["auto-coded at ≤5% error"]
