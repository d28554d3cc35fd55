"""The first hour of a new user, through the GUI only (issue 15's acceptance): an empty project, NACE and
the UK SIC index, a few samples from the test model, curation, a coder, its evaluation, five texts coded
with accept, skip and undo, a Windows-1252 CSV batch-coded, and the decisions as stored.

Kept light: the coder covers divisions 10 and 11, generation writes 2 samples for each of two codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop import keys
from tests.desktop.conftest import wait_jobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def gemma_model(tmp_path_factory) -> Path:
    from engine.llm.registry import test_model_path

    return test_model_path(directory=tmp_path_factory.mktemp("gemma-first-hour"))


def press(qtbot, widget, binding: str) -> None:
    """Press a key binding from desktop/keys.py ("Ctrl+S", "Return") on a widget."""
    from PySide6.QtGui import QKeySequence

    combination = QKeySequence(binding)[0]
    qtbot.keyClick(widget, combination.key(), combination.keyboardModifiers())


def suggestions_for(qtbot, panel, text: str) -> None:
    panel.text.setText(text)
    qtbot.waitUntil(lambda: panel.suggested_text == text and bool(panel.suggestions), timeout=30_000)


def test_the_first_hour_from_an_empty_project_to_a_coded_csv(window, qtbot, tmp_path, gemma_model):
    # An empty project; the checklist says what to do first.
    project = window.new_project(tmp_path / "first.statcoder")
    home = window.pages["project"]
    window.show_page("project")
    assert home.next is not None and home.next.key == "classification"
    qtbot.mouseClick(home.next_button, Qt.MouseButton.LeftButton)

    # 1. NACE Rev. 2, built in, and the UK SIC index as real coded texts.
    classification = window.pages["classification"]
    assert window.stack.currentWidget() is classification
    classification.builtin.setCurrentIndex(classification.builtin.findData("nace2"))
    qtbot.mouseClick(classification.import_builtin_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    dialog = classification.open_real_dialog()
    dialog.source.setCurrentIndex(dialog.source.findData("uksic-index"))
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert project.summary()["codes"] == 996 and project.summary()["real_test"] > 0

    # 2. The test model as the generation model, then a tiny run.
    window.show_page("models")
    models = window.pages["models"]
    models.inspect(gemma_model)
    wait_jobs(qtbot, window)
    qtbot.mouseClick(models.register_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    models.threads.setValue(1)
    models.n_ctx.setValue(1024)
    window.show_page("generate")
    generate = window.pages["generate"]
    generate.subtree.setChecked(True)
    generate.subtree_codes.setText("10.71, 11.05")
    for name, box in generate.strategy_boxes.items():
        box.setChecked(name == "notes")
    generate.quota.setValue(2)
    generate.per_request.setValue(2)
    qtbot.mouseClick(generate.start_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=600_000)
    assert generate.last_result is not None, window.messages.text
    assert generate.last_result.samples == 4

    # 3. Curation from the Review page (the rules; the label check is tested elsewhere).
    window.show_page("review")
    review = window.pages["review"]
    review.open_dialog_hook = lambda d: d.label_check.setChecked(False)
    dialog = review.open_curation_dialog()               # what "Run curation…" opens
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert review.last_curation is not None and review.last_curation.samples == 4

    # 4. A coder for divisions 10 and 11 on the notes, the real texts and the curated samples, evaluated.
    window.show_page("train")
    train = window.pages["train"]
    train.scope.setText("10, 11")
    train.weights["synthetic"].setValue(1)
    train.epochs.setValue(20)
    assert not train.uncurated_label.isVisible()        # everything was curated
    qtbot.mouseClick(train.train_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=300_000)
    model_id = project.conn.execute("SELECT MAX(id) FROM models").fetchone()[0]
    assert model_id is not None, window.messages.text
    qtbot.mouseClick(train.evaluate_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=300_000)
    assert project.conn.execute("SELECT COUNT(*) FROM evaluations WHERE model_id = ?", (model_id,)).fetchone()[0] >= 1

    # 5. Five texts on the Code page: accept, accept, skip, accept then undo, accept.
    window.show_page("code")
    code = window.pages["code"]
    panel = code.panel
    texts = ["industrial bakery making bread", "brewing beer in a microbrewery", "just some words",
             "cider made from apples", "fresh cakes and pastries"]
    accepted = []
    for n, text in enumerate(texts):
        suggestions_for(qtbot, panel, text)
        if n == 2:
            press(qtbot, panel.text, keys.SKIP)
            assert panel.text.text() == ""
            continue
        chosen = panel.suggestions[0].code
        press(qtbot, panel.text, keys.ACCEPT)
        if n == 3:
            press(qtbot, panel.text, keys.UNDO)     # the text comes back; its decision is gone
            assert panel.text.text() == text
            panel.text.clear()
            continue
        accepted.append((text, chosen))
        if len(accepted) == 1:
            assert "1 decision this session" in panel.status.text()
    stored = project.conn.execute("SELECT text, chosen_code FROM corrections ORDER BY id").fetchall()
    assert stored == accepted

    # 6. A CSV saved by Excel on Windows (cp1252), batch-coded, and one row of its review queue decided.
    source = tmp_path / "answers.csv"
    rows = ["crème brûlée and pâtisserie bakery", "brewery making lager – pilsner beer", "café roasting coffee beans",
            "cider from Normandy apples – cidrerie", "naïve home made jam from fruit"]
    with open(source, "w", newline="", encoding="cp1252") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "answer"])
        writer.writerows(enumerate(rows, start=1))
    code.tabs.setCurrentWidget(code.batch)
    batch = code.batch
    batch.encoding.setCurrentText("cp1252")
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    assert batch.text_column.currentText() == "answer"
    batch.threshold.setValue(0.99)                   # nearly every row goes to review
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    result = batch.last_result
    assert result is not None and result.rows == 5, window.messages.text
    assert batch.queue is not None and batch.queue.total == result.review >= 1
    first = batch.current
    assert first.text in rows                        # read as cp1252: the accents are intact
    suggestions_for(qtbot, batch.panel, first.text)
    queued_code = batch.panel.suggestions[0].code
    press(qtbot, batch.panel.text, keys.ACCEPT)
    assert batch.queue.decisions == {first.row: queued_code}
    out = batch.write_reviewed()
    coded = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["answer"] for r in coded] == rows and all(r["code"] for r in coded if r["status"] != "review")

    # The decisions as stored: the three accepted texts and the queued row, nothing skipped or undone.
    stored = project.conn.execute("SELECT text, chosen_code, kind FROM corrections ORDER BY id").fetchall()
    assert [(t, c) for t, c, _k in stored] == accepted + [(first.text, queued_code)]
    assert {k for _t, _c, k in stored} <= {"confirmation", "correction"}
    assert texts[2] not in [t for t, *_ in stored] and texts[3] not in [t for t, *_ in stored]
    window.show_page("project")
    done = {step.key: step.done for step in home.steps}
    assert all(done.values()), done
