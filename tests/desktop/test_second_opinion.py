"""Ctrl+J on the Code page: the local LLM judge's second opinion, computed off the GUI thread."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.desktop.test_responsiveness import MAX_GAP_MS, GapMeter
from tests.engine.llm_support import gemma_path  # noqa: F401


@pytest.fixture
def panel(window, trained_path, qtbot, gemma_path):
    from engine.llm.registry import add_model, set_default_model

    info = add_model(gemma_path)          # the test model as the default LLM of this test's data dir
    set_default_model(info.sha256)
    window.open_project(trained_path)
    window.show_page("code")
    return window.pages["code"].panel


@pytest.mark.slow
def test_ctrl_j_marks_the_judges_choice_without_freezing_the_gui(window, panel, qtbot):
    qtbot.keyClicks(panel.text, "bakery bread")
    qtbot.waitUntil(lambda: panel.suggested_text == "bakery bread" and bool(panel.suggestions), timeout=5000)
    meter = GapMeter(window.runner)
    meter.start(qtbot)
    qtbot.keyClick(panel.text, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    assert "Asking the local LLM" in panel.status.text()
    assert panel.judging                    # what a caller (desktop.screenshots) waits on
    qtbot.waitUntil(lambda: panel.opinion is not None, timeout=120_000)
    assert not panel.judging
    qtbot.wait(200)
    meter.stop()
    opinion = panel.opinion
    assert [c for c, _ in opinion.coder[:5]] == [s.code for s in panel.suggestions]
    marks = [panel.table.item(r, 4).text() for r in range(panel.table.rowCount())]
    starred = [r for r, m in enumerate(marks) if m.endswith("★")]
    assert len(starred) == 1 and panel.suggestions[starred[0]].code == opinion.preferred
    assert all(m.rstrip(" ★").endswith("%") for m in marks)
    assert f"prefers {opinion.preferred}" in panel.status.text()
    assert panel.text.text() == "bakery bread"    # nothing decided: the coder still chooses
    assert meter.longest <= MAX_GAP_MS, f"event loop stalled {meter.longest:.0f} ms: {meter.report()}"
    # Typing on clears the marks with the new suggestions.
    qtbot.keyClicks(panel.text, " rolls")
    qtbot.waitUntil(lambda: panel.suggested_text == "bakery bread rolls", timeout=5000)
    assert all(panel.table.item(r, 4).text() == "" for r in range(panel.table.rowCount()))


def test_ctrl_j_without_suggestions_says_so(window, trained_path, qtbot):
    window.open_project(trained_path)
    window.show_page("code")
    panel = window.pages["code"].panel
    qtbot.keyClick(panel.text, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    assert "needs suggestions" in panel.status.text()
    assert not panel.judging


@pytest.mark.slow
def test_batch_tab_with_second_opinions_adds_the_judge_column(window, panel, qtbot, tmp_path):
    import csv

    from tests.desktop.conftest import wait_jobs

    source = tmp_path / "answers.csv"
    source.write_text("id,answer\n1,bakery bread\n2,craft beer\n3,goat cheese\n4,chocolate\n", encoding="utf-8")
    page = window.pages["code"]
    page.tabs.setCurrentWidget(page.batch)
    batch = page.batch
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    batch.threshold.setValue(0.99)
    batch.judge.setChecked(True)
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=120_000)
    result = batch.last_result
    assert result is not None and result.judge is not None and result.judge["judged"] >= 1
    assert "the local LLM read" in batch.result_label.text()
    with open(result.out_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {r["judge"] for r in rows} <= {"agreed", "changed", ""}
    assert sum(r["judge"] != "" for r in rows) == result.judge["judged"]
