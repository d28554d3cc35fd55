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
    qtbot.waitUntil(lambda: panel.opinion is not None, timeout=120_000)
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
