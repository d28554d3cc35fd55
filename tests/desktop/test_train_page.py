"""Train & evaluate page through real widgets: train with progress, metrics side by side, charts, report."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.desktop.conftest import wait_jobs


def cell(page, label, col):
    rows = [page.table.verticalHeaderItem(r).text() for r in range(page.table.rowCount())]
    return page.table.item(rows.index(label), col).text()


def train_on_10_7_and_code_with_it(window, qtbot, page, name: str, *, timeout: int):
    """Train the page's chosen kind on notes + real of group 10.7 as coder 2, make it the coder of the Code
    page and type a text there; returns the Code page's panel with its suggestions."""
    page.weights["synthetic"].setValue(0)
    page.scope.setText("10.7")
    page.name.setText(name)
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window, timeout=timeout)
    assert "Trained coder 2" in window.messages.text, window.messages.text
    assert page.table.horizontalHeaderItem(1).text().endswith(f"#2 {name}")
    assert 0.0 < float(cell(page, "top-1", 1).rstrip("%")) <= 100.0
    page.table.setCurrentCell(0, 1)
    qtbot.mouseClick(page.default_button, Qt.MouseButton.LeftButton)
    panel = window.pages["code"].panel
    qtbot.keyClicks(panel.text, "bread bakery")
    qtbot.waitUntil(lambda: panel.suggested_text == "bread bakery" and bool(panel.suggestions), timeout=60_000)
    return panel


def test_train_and_see_metrics_side_by_side(window, qtbot, trained_path, tmp_path):
    window.open_project(trained_path)
    window.show_page("train")
    page = window.pages["train"]
    assert page.table.columnCount() == 1
    assert cell(page, "top-1", 0) == "not evaluated"
    page.weights["synthetic"].setValue(0)
    page.scope.setText("10, 11")
    page.epochs.setValue(30)
    page.name.setText("second")
    progress = []
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    page.progress.job.signals.progress.connect(lambda info: progress.append(info.done))
    assert page.progress.isVisible()
    wait_jobs(qtbot, window, timeout=120_000)
    # a warning when the new model scored worse than the serving one on the same texts (it is then kept)
    assert window.messages.level in ("info", "warning") and "Trained coder 2" in window.messages.text
    assert progress and progress == sorted(progress) and progress[-1] == 1000
    assert page.table.columnCount() == 2
    header = page.table.horizontalHeaderItem(1).text()
    assert header.endswith("#2 second")
    top1 = float(cell(page, "top-1", 1).rstrip("%")) / 100
    top5 = float(cell(page, "top-5", 1).rstrip("%")) / 100
    assert 0.3 < top1 <= top5 <= 1.0
    assert cell(page, "accuracy: section", 1) == "100.0%"   # divisions 10-11 are all in section C
    # charts: per-level bars for the evaluated model, the curve and the slider's reading
    assert page.level_chart.models == [header]
    page.threshold.setValue(0)
    assert "auto-codes 100.0% of texts" in page.threshold_label.text()
    page.threshold.setValue(90)
    assert "Threshold 0.90" in page.threshold_label.text()
    assert page.confused.rowCount() > 0
    first = page.confused
    gold, predicted = (first.item(0, c).data(Qt.ItemDataRole.UserRole) for c in (0, 1))
    assert page.confusion_chart.labels[-1] == f"{gold} → {predicted}"
    page.export_report(tmp_path / "report")
    wait_jobs(qtbot, window)
    assert page.last_report is not None and page.last_report.read_text().count("<img") >= 3


def test_cancel_training_keeps_the_project_unchanged(window, qtbot, trained_path):
    window.open_project(trained_path)
    page = window.pages["train"]
    page.epochs.setValue(400)
    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.progress.job is not None and page.progress.job.last_progress is not None,
                    timeout=60_000)
    qtbot.mouseClick(page.progress.cancel_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert "cancelled" in window.messages.text
    assert window.ctx.project.summary()["models"] == 1


def test_train_an_embedding_coder_and_code_with_it(window, qtbot, trained_path):
    window.open_project(trained_path)
    page = window.pages["train"]
    page.kind.setCurrentIndex(page.kind.findData("embedding-lr"))
    assert not page.epochs.isEnabled()
    panel = train_on_10_7_and_code_with_it(window, qtbot, page, "embeddings 10.7", timeout=180_000)
    assert page.table.columnCount() == 2
    assert "embeddings 10.7 (model 2, embedding" in panel.model_label.text()
    assert {s.code for s in panel.suggestions} <= {"10.71", "10.72", "10.73"}


def test_train_a_lexical_coder_from_the_page_and_code_with_it(window, qtbot, trained_path):
    window.open_project(trained_path)
    page = window.pages["train"]
    page.kind.setCurrentIndex(page.kind.findData("lexical"))
    assert not page.epochs.isEnabled() and not page.quantize.isEnabled()
    panel = train_on_10_7_and_code_with_it(window, qtbot, page, "words 10.7", timeout=120_000)
    assert "words 10.7 (model 2, lexical" in panel.model_label.text()
    assert panel.suggestions[0].code in {"10.71", "10.72", "10.73"}
