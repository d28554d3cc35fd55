"""Classification page through real widgets: built-in import, generic import with preview, tree search."""

from __future__ import annotations

from engine.changes import Changes

from PySide6.QtCore import Qt, QUrl

from engine.classification import children, search_codes
from tests.conftest import snapshot
from tests.desktop.conftest import wait_jobs


def test_import_builtin_nace_through_the_page(window, qtbot, tmp_path):
    project = window.new_project(tmp_path / "nace.statcoder")
    page = window.pages["classification"]
    window.show_page("classification")
    page.builtin.setCurrentIndex(page.builtin.findData("nace2"))
    qtbot.mouseClick(page.import_builtin_button, Qt.MouseButton.LeftButton)
    assert window.runner.busy
    wait_jobs(qtbot, window)
    assert project.summary()["codes"] == 996
    assert project.summary()["leaf_codes"] == 615
    assert "996 codes" in window.messages.text and "21 / 88 / 272 / 615" in window.messages.text
    assert page.tree_model.rowCount() == 21
    first = page.tree_model.index(0, 0)
    assert page.tree_model.data(first) == "A"
    assert page.tree_model.rowCount(first) == 3          # divisions 01-03
    assert not page.import_builtin_button.isEnabled()   # one classification per project
    assert page.import_real_button.isEnabled()


def test_search_as_you_type_and_follow_an_excludes_link(window, qtbot, nace_path):
    window.open_project(nace_path)
    page = window.pages["classification"]
    window.show_page("classification")
    qtbot.keyClick(page, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert page.search.hasFocus()
    qtbot.keyClicks(page.search, "bread")
    qtbot.waitUntil(lambda: page.views.currentWidget() is page.results, timeout=2000)
    codes = [page.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(page.results.count())]
    assert "10.71" in codes
    assert "match “bread”" in page.result_count.text()
    # search over notes too: a word that appears only in the includes of some codes
    page.search.clear()
    qtbot.keyClicks(page.search, "rusks")
    qtbot.waitUntil(lambda: "rusks" in page.result_count.text(), timeout=2000)
    assert page.results.item(0).data(Qt.ItemDataRole.UserRole).startswith("10.7")

    page.reveal("10.71")
    assert page.tree_model.code_at(page.tree.currentIndex()) == "10.71"
    html = page.details.toHtml()
    assert "Manufacture of bread" in html and "real (train)" in html
    assert 'href="code:' in html
    page.details.anchorClicked.emit(QUrl("code:10.72"))
    assert page.tree_model.code_at(page.tree.currentIndex()) == "10.72"
    assert page.details.code == "10.72"


def test_details_show_what_other_codes_excludes_send_here(window, nace_path):
    window.open_project(nace_path)
    page = window.pages["classification"]
    page.reveal("01.13")
    html = page.details.toHtml()
    # 01.11's excludes: "growing of sweet corn, see 01.13"
    assert "Sent here by other codes' excludes" in html
    assert "growing of sweet corn" in html and 'href="code:01.11"' in html
    page.reveal("01.11")       # what 01.11 sends elsewhere is listed under its own excludes instead
    assert "growing of sweet corn" in page.details.toHtml()
    assert 'href="code:01.13"' in page.details.toHtml()
    # one excluded activity that several codes send here is one line naming them all
    page.reveal("46.34")
    html = page.details.toHtml()
    assert html.count("merely bottling and labelling") == 1
    assert all(f'href="code:{c}"' in html for c in ("11.01", "11.02", "11.03", "11.04", "11.07"))


def test_generic_import_previews_and_refuses_a_bad_file(window, qtbot, tmp_path):
    project = window.new_project(tmp_path / "own.statcoder")
    before = snapshot(project)
    bad = tmp_path / "own.csv"
    bad.write_text("Code,Name,Notes\nA,Agriculture,\nA1,Crops,grains\nB9,Orphan,\nA,Again,\n", encoding="utf-8")
    page = window.pages["classification"]
    dialog = page.open_import_dialog()
    qtbot.addWidget(dialog)
    dialog.file.edit.setText(str(bad))
    dialog.file.edit.editingFinished.emit()
    assert dialog.mapping["code"].currentText() == "Code"
    assert dialog.mapping["title"].currentText() == "Name"
    assert dialog.mapping["notes"].currentText() == "Notes"
    assert dialog.table.rowCount() == 4
    assert dialog.table.horizontalHeaderItem(1).text() == "Name → title"
    qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    problems = [dialog.problems.item(i).text() for i in range(dialog.problems.count())]
    assert any("row 5" in p and "duplicate code 'A'" in p for p in problems)
    assert not dialog.import_button.isEnabled()
    assert snapshot(project) == before

    bad.write_text("Code,Name,Notes\nA,Agriculture,\nA1,Crops,grains\nA2,Animals,\n", encoding="utf-8")
    dialog.load_preview()
    qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert dialog.import_button.isEnabled()
    assert "3 codes, but no links to other codes were found" in dialog.status.text()
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert project.summary()["codes"] == 3
    assert [c.code for c in children(project, "A")] == ["A1", "A2"]
    assert page.tree_model.rowCount() == 1


def test_import_real_texts_preset_through_the_dialog(window, qtbot, tmp_path):
    from engine.classification import import_builtin

    project = window.new_project(tmp_path / "n.statcoder")
    import_builtin(project, "nace2")
    window.ctx.apply_changes(Changes(classification=True))
    page = window.pages["classification"]
    dialog = page.open_real_dialog()
    qtbot.addWidget(dialog)
    assert dialog.source.currentData() == "uksic-index"
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    summary = project.summary()
    assert summary["real_train"] + summary["real_test"] == 15957
    assert "imported 15957" in window.messages.text
    assert "15,957" not in page.summary.text() and f"{summary['real_train']:,} train" in page.summary.text()


def test_user_text_is_shown_as_text_not_markup(window, qtbot, tmp_path):
    """Issue 12: a classification named '<h1>…' showed as a red heading; messages quote user text too."""
    from engine.classification import ColumnMapping, import_parsed, parse_generic
    from engine.store.project import Project

    path = tmp_path / "evil.statcoder"
    source = tmp_path / "evil.csv"
    source.write_text("code,title\nA,<h1 style='color:red'>Alpha</h1>\nA1,Alpha one\n", encoding="utf-8")
    with Project.create(path) as project:
        import_parsed(project, parse_generic(source, ColumnMapping(), name="<h1 style='color:red'>Big</h1>"))
    window.open_project(path)
    page = window.pages["classification"]
    window.show_page("classification")
    assert "&lt;h1" in page.summary.text() and "<h1" not in page.summary.text()
    assert page.result_count.textFormat() == Qt.TextFormat.PlainText
    window.ctx.notify("<h1>not a heading</h1>")
    assert window.messages.label.textFormat() == Qt.TextFormat.PlainText


def test_search_finds_stemmed_words_on_the_page_and_in_the_code_picker(window, qtbot, nace_path):
    from desktop.widgets.code_picker import CodePicker

    window.open_project(nace_path)
    page = window.pages["classification"]
    window.show_page("classification")
    qtbot.keyClicks(page.search, "dairy")
    qtbot.waitUntil(lambda: page.views.currentWidget() is page.results, timeout=2000)
    codes = [page.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(page.results.count())]
    assert "10.51" in codes                            # "Operation of dairies and cheese making"
    page.search.setText("1051")
    page.run_search()
    assert page.results.count() == 1 and page.result_count.text() == "1 code matches “1051”"
    picker = CodePicker(window.ctx.project, window, query="dairy")
    qtbot.addWidget(picker)
    found = [picker.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(picker.results.count())]
    assert "10.51" in found and all(len(code) == 5 for code in found)   # leaves only
    picker.search.setText("bakry")                     # a typo
    picker.run_search()
    assert picker.results.count() > 0 and picker.chosen == search_codes(window.ctx.project, "bakery",
                                                                        leaves_only=True)[0].code


def test_import_dialog_says_how_many_links_before_writing_and_takes_an_excludes_pattern(window, qtbot, tmp_path):
    project = window.new_project(tmp_path / "isco.statcoder")
    before = snapshot(project)
    path = tmp_path / "isco.csv"
    path.write_text('ISCO 08 Code,Title EN,Excluded occupations\n2,Professionals,\n21,Science professionals,\n'
                    '2111,Physicists,"Some related occupations classified elsewhere:\n- Geologist - 2114"\n'
                    '2114,Geologists,Mining engineers [2146]\n2146,Mining engineers,\n', encoding="utf-8")
    dialog = window.pages["classification"].open_import_dialog()
    qtbot.addWidget(dialog)
    dialog.file.edit.setText(str(path))
    dialog.file.edit.editingFinished.emit()
    assert dialog.mapping["excludes"].currentText() == "Excluded occupations"
    qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert "5 codes and 1 link to other codes found" in dialog.status.text()
    assert snapshot(project) == before                 # the preview wrote nothing
    dialog.excludes_pattern.setText(r"\[(\d{4})\]")
    assert not dialog.import_button.isEnabled()        # a changed pattern must be checked again
    qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert "5 codes and 2 links to other codes found" in dialog.status.text()
    dialog.activity_titles.setChecked(True)
    assert not dialog.import_button.isEnabled()        # so must a changed title setting
    qtbot.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert project.summary()["links"] == 2
    from engine.coders.heads import activity_titles

    assert activity_titles(project)                    # ISCO's titles do not, but the box says so here
