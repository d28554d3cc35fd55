"""Coverage is explicit in the GUI (issue 15, item 2): the Code page says what the coder knows, the Train
page evaluates on the coder's own codes, says when columns were scored on different texts, and a new
coder that does worse on the texts both know does not silently become the one used for coding."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.coders.registry import default_model_id
from engine.evaluate.compare import ServingDecision, compare_on_validation
from tests.desktop.conftest import wait_jobs


def rows(page):
    return [page.table.verticalHeaderItem(r).text() for r in range(page.table.rowCount())]


def test_the_code_page_says_the_coder_knows_part_of_the_classification(window, trained_path):
    window.open_project(trained_path)
    label = window.pages["code"].panel.model_label.text()
    assert "knows only 32 of the" in label and "(10, 11)" in label


def test_evaluate_uses_the_coders_codes_and_says_so(window, qtbot, trained_path):
    window.open_project(trained_path)
    window.show_page("train")
    page = window.pages["train"]
    page.table.setCurrentCell(0, 0)
    page.evaluate_selected()
    wait_jobs(qtbot, window)
    assert "Evaluated coder 1 on the" in window.messages.text and "of the 32 of the" in window.messages.text
    with_texts = window.ctx.project.conn.execute(
        "SELECT COUNT(DISTINCT code) FROM real_texts WHERE split = 'test' AND (code LIKE '10.%' OR code LIKE '11.%')"
    ).fetchone()[0]
    assert page.table.item(rows(page).index("codes evaluated"), 0).text() == str(with_texts)


def test_training_on_other_codes_is_compared_on_the_same_texts(window, qtbot, trained_path, monkeypatch):
    import desktop.messages

    asked = []
    monkeypatch.setattr(desktop.messages, "ask_yes_no", lambda parent, title, q: asked.append(q) or False)
    window.open_project(trained_path)
    window.show_page("train")
    page = window.pages["train"]
    page.table.setCurrentCell(0, 0)
    page.evaluate_selected()
    wait_jobs(qtbot, window)
    page.weights["synthetic"].setValue(0)
    page.scope.setText("10, 11, 12")
    page.epochs.setValue(10)
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=180_000)
    project = window.ctx.project
    comparison = compare_on_validation(project, [1, 2])
    serving = default_model_id(project)
    # never silently worse: either the new coder does at least as well on the texts both know, or the
    # serving one was kept and the user was asked
    if comparison.top1[2] < comparison.top1[1]:
        assert serving == 1 and len(asked) == 1 and "still used for coding" in asked[0]
    else:
        assert serving == 2 and asked == []
    assert f"same {comparison.n:,} validation texts" in window.messages.text
    labels = rows(page)
    same = [label for label in labels if label.startswith("top-1 on the same")]
    assert same and page.same_texts_note.isVisible() and "different test texts" in page.same_texts_note.text()


def test_the_user_may_use_the_new_coder_anyway(window, qtbot, trained_path, monkeypatch):
    import desktop.messages
    import desktop.pages.train as train_page

    def kept(project, new_id, previous_id):
        return ServingDecision(previous_id, new_id, False, True, f"Model {previous_id} is still used for coding: …")

    monkeypatch.setattr(train_page, "serving_after_training", kept)
    monkeypatch.setattr(desktop.messages, "ask_yes_no", lambda parent, title, q: True)
    window.open_project(trained_path)
    page = window.pages["train"]
    page.scope.setText("10")
    page.weights["synthetic"].setValue(0)
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=180_000)
    assert default_model_id(window.ctx.project) == 2
    assert "You chose model 2 for coding anyway" in window.messages.text
