"""The curation dialog and the Train page carry the synthetic-data methods' options to the engine."""

from __future__ import annotations


def test_curation_dialog_passes_supergen_sungen_and_fusegen(qtbot):
    from desktop.widgets.curation_form import CurationDialog
    from engine.curate.settings import CurationSettings

    dialog = CurationDialog([(1, "run 1")])
    qtbot.addWidget(dialog)
    assert dialog.settings().methods() == CurationSettings().methods()      # off by default
    dialog.supergen.setValue(0.25)
    dialog.sungen.setValue(0.1)
    dialog.fusegen.setValue(3)
    settings = dialog.settings()
    assert (settings.supergen_share, settings.sungen_share, settings.fusegen_top_k) == (0.25, 0.1, 3)


def test_train_page_mix_carries_sibling_smoothing(window, trained_path):
    window.open_project(trained_path)
    window.show_page("train")
    page = window.pages["train"]
    assert page.data_mix().hierarchy_smoothing == 0.0
    page.hierarchy.setValue(0.1)
    assert page.data_mix().hierarchy_smoothing == 0.1
