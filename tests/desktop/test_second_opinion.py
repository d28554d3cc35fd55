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


def _judged_batch(window, qtbot, tmp_path, rows: str):
    """Code a small CSV from the Code page's batch tab with second opinions on; returns the tab when done."""
    from tests.desktop.conftest import wait_jobs

    source = tmp_path / "answers.csv"
    source.write_text("id,answer\n" + rows, encoding="utf-8")
    page = window.pages["code"]
    page.tabs.setCurrentWidget(page.batch)
    batch = page.batch
    batch.file.edit.setText(str(source))
    batch.file.edit.editingFinished.emit()
    batch.threshold.setValue(0.99)
    batch.judge.setChecked(True)
    qtbot.mouseClick(batch.code_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=120_000)
    return batch


@pytest.mark.slow
def test_batch_tab_with_second_opinions_adds_the_judge_column(window, panel, qtbot, tmp_path):
    import csv

    batch = _judged_batch(window, qtbot, tmp_path, "1,bakery bread\n2,craft beer\n3,goat cheese\n4,chocolate\n")
    result = batch.last_result
    assert result is not None and result.judge is not None and result.judge["judged"] >= 1
    assert "the local LLM read" in batch.result_label.text()
    with open(result.out_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {r["judge"] for r in rows} <= {"agreed", "changed", ""}
    assert sum(r["judge"] != "" for r in rows) == result.judge["judged"]


# second opinions by themselves (issue 14: "automatically when the machine is idle") ---------------------
SHIFT_CTRL = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def auto_panel(window, trained_path, qtbot):
    """The Code panel over the real coder, its judge replaced by a quick scripted one (the real LLM path is
    the slow test above): `asked` lists the texts it was asked about; `threshold` is the judge's."""
    from engine.assist.judge import SecondOpinion

    window.open_project(trained_path)
    window.show_page("code")
    panel = window.pages["code"].panel
    backend = panel.backend
    state = {"asked": [], "threshold": 1.01, "fail": None}

    def second_opinion(text):
        state["asked"].append(text)
        if state["fail"]:
            raise state["fail"]
        top = backend.suggest(text, 5)
        ranked = [(s.code, s.probability) for s in top]
        judge = [(code, 1.0 if i == len(ranked) - 1 else 0.0) for i, (code, _) in enumerate(ranked)]
        return SecondOpinion(text=text, coder=ranked, judge=judge, combined=ranked, preferred=ranked[-1][0],
                             shown=[], seconds=0.1, fitted=True)

    backend.second_opinion = second_opinion
    backend.judge_available = lambda: True
    backend.judge_threshold = lambda: state["threshold"]
    panel.set_backend(backend)
    panel._idle.setInterval(30)
    panel.state = state
    return panel


def test_ctrl_shift_j_turns_opinions_by_themselves_on_and_they_come_when_the_coder_is_unsure(auto_panel, qtbot):
    from desktop.settings import app_settings
    from desktop.widgets.coding_panel import AUTO_OPINION_SETTING

    panel = auto_panel
    assert panel.auto_opinion.isEnabled() and not panel.auto_opinion.isChecked()     # off at first
    qtbot.keyClick(panel.text, Qt.Key.Key_J, SHIFT_CTRL)
    assert panel.auto_opinion.isChecked() and "on" in panel.status.text()
    assert app_settings().value(AUTO_OPINION_SETTING, False, type=bool) is True       # remembered
    qtbot.keyClicks(panel.text, "bakery bread")
    qtbot.waitUntil(lambda: panel.opinion is not None, timeout=10_000)
    assert panel.state["asked"] == ["bakery bread"]                                   # once per text
    starred = [r for r in range(panel.table.rowCount()) if panel.table.item(r, 4).text().endswith("★")]
    assert [panel.suggestions[r].code for r in starred] == [panel.opinion.preferred]
    qtbot.keyClicks(panel.text, " rolls")
    qtbot.waitUntil(lambda: getattr(panel.opinion, "text", "") == "bakery bread rolls", timeout=10_000)
    assert panel.state["asked"] == ["bakery bread", "bakery bread rolls"]
    qtbot.keyClick(panel.text, Qt.Key.Key_J, SHIFT_CTRL)
    assert not panel.auto_opinion.isChecked()
    assert app_settings().value(AUTO_OPINION_SETTING, True, type=bool) is False


def test_no_opinion_by_itself_when_the_coder_is_sure_or_while_a_job_runs(window, auto_panel, qtbot):
    panel = auto_panel
    panel.auto_opinion.setChecked(True)
    panel.state["threshold"] = 0.0                     # the coder is always sure
    qtbot.keyClicks(panel.text, "bakery bread")
    qtbot.waitUntil(lambda: panel.suggested_text == "bakery bread" and bool(panel.suggestions), timeout=5000)
    assert not panel._idle.isActive() and panel.state["asked"] == []
    panel.state["threshold"] = 1.01                    # unsure, but the machine is busy
    window.runner.active.append(object())
    qtbot.keyClicks(panel.text, " rolls")
    qtbot.waitUntil(lambda: panel.suggested_text == "bakery bread rolls" and panel._idle.isActive(), timeout=5000)
    qtbot.waitUntil(lambda: not panel._idle.isActive(), timeout=5000)
    assert panel.state["asked"] == [] and panel.opinion is None
    window.runner.active.clear()                       # the job ends: the pause counts again
    window.runner.busy_changed.emit(False)
    qtbot.waitUntil(lambda: panel.state["asked"] == ["bakery bread rolls"], timeout=5000)


def test_a_failing_judge_turns_opinions_by_themselves_off_for_the_panel(window, auto_panel, qtbot):
    from desktop.settings import app_settings
    from desktop.widgets.coding_panel import AUTO_OPINION_SETTING
    from engine.errors import ModelError

    panel = auto_panel
    panel.state["fail"] = ModelError("the judge needs a local LLM")
    panel.auto_opinion.setChecked(True)
    qtbot.keyClicks(panel.text, "bakery bread")
    qtbot.waitUntil(lambda: not panel.auto_opinion.isChecked(), timeout=10_000)
    assert panel.state["asked"] == ["bakery bread"] and "none by itself" in panel.status.text()
    assert app_settings().value(AUTO_OPINION_SETTING, False, type=bool) is True       # the choice stays
    qtbot.keyClicks(panel.text, " rolls")
    qtbot.waitUntil(lambda: panel.suggested_text == "bakery bread rolls", timeout=5000)
    qtbot.wait(100)
    assert panel.state["asked"] == ["bakery bread"]


def test_without_a_local_llm_opinions_by_themselves_cannot_be_turned_on(window, trained_path, qtbot):
    window.open_project(trained_path)
    window.show_page("code")
    panel = window.pages["code"].panel
    assert not panel.auto_opinion.isEnabled()
    qtbot.keyClick(panel.text, Qt.Key.Key_J, SHIFT_CTRL)
    assert not panel.auto_opinion.isChecked() and "need a local LLM" in panel.status.text()


@pytest.mark.slow
def test_batch_tab_says_when_a_judge_fitted_to_no_weight_was_not_asked(window, panel, qtbot, tmp_path):
    from engine.assist.judge import JUDGE_SETTING, JudgeConfig
    from engine.coders.registry import load_coder
    from engine.llm.judge import Combination
    from engine.llm.registry import get_default_model
    project = window.ctx.project
    record = load_coder(project, None)[1]
    config = JudgeConfig(k=3, orders=1, fitted=True, combination=Combination(weight=0.0, gate=0.0, temperature=1.0),
                         coder_model_id=record.id, coder_sha256=record.sha256,
                         judge_model_sha256=get_default_model().sha256)
    project.set_setting(JUDGE_SETTING, config.to_json())
    batch = _judged_batch(window, qtbot, tmp_path, "1,bakery bread\n2,craft beer\n3,goat cheese\n")
    result = batch.last_result
    assert result is not None and result.judge["judged"] == 0 and result.judge["not_asked"] >= 1
    assert f"{result.judge['not_asked']} unsure rows were not put to the local LLM" in batch.result_label.text()
    assert "read 0" not in batch.result_label.text()
