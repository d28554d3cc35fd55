"""The Code page's Uncoded tab: import texts nobody coded, label them, review the least confident by key."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.desktop.conftest import wait_jobs
from tests.engine.llm_support import gemma_path  # noqa: F401

# Answers a coder for divisions 10-11 (food and drinks) is sure about, and ones it cannot be sure about.
TEXTS = ["our bakery makes bread and cakes", "we brew craft beer", "small dairy making goat cheese",
         "making chocolate bars by hand", "bottling of spring water", "fish processing and canning plant",
         "we repair old bicycles", "hair salon for men", "it consultancy for banks", "cleaning windows of offices",
         "tax advice for small firms", "night taxi service"]


def write_csv(path, texts, column="answer"):
    path.write_text(f"id,{column}\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts, 1)), encoding="utf-8")
    return path


@pytest.fixture
def tab(window, trained_path):
    window.open_project(trained_path)
    window.show_page("code")
    page = window.pages["code"]
    page.tabs.setCurrentWidget(page.uncoded)
    return page.uncoded


def import_texts(tab, qtbot, window, path):
    dialog = tab.open_import_dialog()
    dialog.file.edit.setText(str(path))
    dialog.file.edit.editingFinished.emit()
    assert dialog.text_column.currentText() == "answer"       # guessed from the header
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    return dialog


def rows(project, sql, *args):
    return project.conn.execute(sql, args).fetchall()


def test_uncoded_texts_import_with_counts_and_a_bad_file_changes_nothing(window, tab, qtbot, tmp_path):
    assert "No uncoded texts yet" in tab.status_label.text()
    assert not tab.label_button.isEnabled()                   # nothing to label
    empty = tmp_path / "empty.csv"
    empty.write_text("id,answer\n", encoding="utf-8")
    dialog = tab.open_import_dialog()
    dialog.file.edit.setText(str(empty))
    dialog.file.edit.editingFinished.emit()
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert window.messages.level == "error" and "no rows" in window.messages.text
    assert rows(window.ctx.project, "SELECT COUNT(*) FROM uncoded_texts")[0][0] == 0
    dialog.reject()

    dialog = import_texts(tab, qtbot, window, write_csv(tmp_path / "answers.csv", TEXTS + [TEXTS[0]]))
    assert dialog.result.imported == len(TEXTS) and len(dialog.result.duplicates) == 1
    assert f"{len(TEXTS):,} uncoded texts: {len(TEXTS):,} not labelled yet" in tab.status_label.text()
    assert tab.label_button.isEnabled()
    assert "skipped 1 duplicates" in window.messages.text


def test_labelling_fills_the_review_queue_and_decisions_by_key_review_the_labels(window, tab, qtbot, tmp_path):
    import_texts(tab, qtbot, window, write_csv(tmp_path / "answers.csv", TEXTS))
    qtbot.mouseClick(tab.label_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    project = window.ctx.project
    result = tab.last_result
    assert result is not None and result.labelled == len(TEXTS) and result.judged == 0
    statuses = dict(rows(project, "SELECT status, COUNT(*) FROM pseudo_labels GROUP BY status"))
    assert sum(statuses.values()) == len(TEXTS) and statuses.get("review", 0) >= 2
    assert "0 not labelled yet" in tab.status_label.text()
    assert f"{statuses['review']:,} waiting for review" in tab.status_label.text()
    # Least confident first: the panel shows the queue's first text.
    queue = [(uid, score) for uid, score in rows(project, "SELECT uncoded_id, score FROM pseudo_labels"
                                                         " WHERE status = 'review' ORDER BY score, uncoded_id")]
    first = queue[0][0]
    panel = tab.panel
    first_text = rows(project, "SELECT text FROM uncoded_texts WHERE id = ?", first)[0][0]
    assert panel.text.text() == first_text and tab.current.uncoded_id == first
    assert f"{len(queue)} waiting" in tab.queue_label.text()

    qtbot.waitUntil(lambda: panel.suggested_text == first_text and bool(panel.suggestions), timeout=10_000)
    top = panel.suggestions[0].code
    qtbot.keyClick(panel.text, Qt.Key.Key_Return)
    assert rows(project, "SELECT status, code FROM pseudo_labels WHERE uncoded_id = ?", first) == [("reviewed", top)]
    assert rows(project, "SELECT chosen_code FROM corrections WHERE text = ?", first_text) == [(top,)]
    assert rows(project, "SELECT code FROM real_texts WHERE text = ? AND split = 'train'", first_text) == [(top,)]
    second = queue[1][0]
    assert tab.current.uncoded_id == second and f"{len(queue) - 1} waiting" in tab.queue_label.text()

    # Ctrl+S skips: nothing stored, the text stays in the queue.
    second_text = panel.text.text()
    qtbot.keyClick(panel.text, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert rows(project, "SELECT status FROM pseudo_labels WHERE uncoded_id = ?", second) == [("review",)]
    assert panel.text.text() != second_text or len(queue) == 2

    # Ctrl+Z undoes the first decision: its label waits for review again, and its training text is gone.
    qtbot.keyClick(panel.text, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert rows(project, "SELECT status FROM pseudo_labels WHERE uncoded_id = ?", first) == [("review",)]
    assert rows(project, "SELECT COUNT(*) FROM corrections WHERE text = ?", first_text) == [(0,)]
    assert tab.current.uncoded_id == first and panel.text.text() == first_text

    # Ctrl+U: the text cannot be coded; the label leaves the queue and never trains as a pseudo-label.
    qtbot.waitUntil(lambda: panel.suggested_text == first_text and bool(panel.suggestions), timeout=10_000)
    qtbot.keyClick(panel.text, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    assert rows(project, "SELECT status FROM pseudo_labels WHERE uncoded_id = ?", first) == [("reviewed",)]
    from engine.assist.pseudo import pseudo_pairs

    assert first_text not in {t for t, _ in pseudo_pairs(project)}


def test_the_train_page_weights_the_pseudo_labelled_source(window, tab):
    train = window.pages["train"]
    assert train.data_mix().pseudo == 0                       # off unless asked for
    train.weights["pseudo"].setValue(2)
    assert train.data_mix().pseudo == 2


@pytest.mark.slow
def test_labelling_with_the_llm_judge_can_be_stopped_and_goes_on_where_it_stopped(window, tab, qtbot, tmp_path,
                                                                                  gemma_path):
    from engine.llm.registry import add_model, set_default_model

    info = add_model(gemma_path)           # the test model as the default LLM (the judge's model)
    set_default_model(info.sha256)
    import_texts(tab, qtbot, window, write_csv(tmp_path / "answers.csv", TEXTS))
    tab.judge.setChecked(True)
    qtbot.mouseClick(tab.label_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "judged" in tab.progress.label.text() or not window.runner.busy, timeout=120_000)
    qtbot.mouseClick(tab.progress.cancel_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=120_000)
    project = window.ctx.project
    first = rows(project, "SELECT COUNT(*) FROM pseudo_labels")[0][0]
    assert first >= 1                                       # what was judged before the stop is kept
    if first < len(TEXTS):
        assert "Labelling stopped" in window.messages.text
        assert f"{len(TEXTS) - first:,} not labelled yet" in tab.status_label.text()
    qtbot.mouseClick(tab.label_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=300_000)
    labels = rows(project, "SELECT judged, judge_model_sha256 FROM pseudo_labels")
    assert len(labels) == len(TEXTS)                        # every text once: nothing labelled twice
    assert any(judged for judged, _ in labels)
    assert {sha for judged, sha in labels if judged} == {info.sha256}
    assert "0 not labelled yet" in tab.status_label.text()
