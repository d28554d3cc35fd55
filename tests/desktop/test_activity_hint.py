"""The Code page says which activity a text names when the serving coder ranks toward it (title heads)."""

from __future__ import annotations

from engine.classification import leaf_codes_under
from engine.coders.data import DataMix
from engine.coders.registry import set_default_model
from engine.coders.train import train_coder
from engine.store.project import Project


def test_the_code_page_names_the_activity_the_coder_ranks_toward(window, qtbot, trained_path):
    with Project.open(trained_path) as project:
        mix = DataMix(notes=1, codes=leaf_codes_under(project, ["20", "46"]), validation_from="training")
        members = [train_coder(project, mix, kind=kind, make_default=False).model_id for kind in ("lexical", "fasttext")]
        ensemble = train_coder(project, mix, kind="ensemble", members=members, make_default=False)
        assert ensemble.params["title_heads"]["beta"] > 0
        set_default_model(project, ensemble.model_id)
    window.open_project(trained_path)
    window.show_page("code")
    panel = window.pages["code"].panel
    qtbot.keyClicks(panel.text, "Acids (wholesale)")
    qtbot.waitUntil(lambda: panel.suggested_text == "Acids (wholesale)" and bool(panel.suggestions), timeout=30_000)
    assert panel.activity.isVisible()
    assert "“Wholesale”" in panel.activity.text() and "ranked higher" in panel.activity.text()
    panel.text.clear()
    qtbot.keyClicks(panel.text, "acids and paints")
    qtbot.waitUntil(lambda: panel.suggested_text == "acids and paints", timeout=30_000)
    assert not panel.activity.isVisible()


def test_no_activity_line_for_a_coder_without_title_heads(window, qtbot, trained_path):
    window.open_project(trained_path)          # its coder is fastText alone
    window.show_page("code")
    panel = window.pages["code"].panel
    qtbot.keyClicks(panel.text, "bread (wholesale)")
    qtbot.waitUntil(lambda: panel.suggested_text == "bread (wholesale)" and bool(panel.suggestions), timeout=30_000)
    assert not panel.activity.isVisible()
