"""Classification page: imports, the hierarchy tree with search-as-you-type, and the selected code in full."""

from __future__ import annotations

import html

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QSplitter,
    QStackedWidget, QTreeView, QVBoxLayout, QWidget,
)

from engine.changes import Changes
from engine.classification import BUILTINS, import_builtin, search_codes
from engine.store.project import Project

from ..context import AppContext, Page
from ..widgets.code_details import CodeDetails
from ..widgets.code_tree import CodeTreeModel
from .imports import ClassificationImportDialog, RealTextsImportDialog

SEARCH_DELAY_MS = 120
SEARCH_LIMIT = 200


class ClassificationPage(Page):
    key = "classification"
    title = "Classification"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.builtin = QComboBox()
        for item in BUILTINS.values():
            self.builtin.addItem(item.title, item.name)
        self.import_builtin_button = QPushButton("Import built-in")
        self.import_builtin_button.clicked.connect(self.import_selected_builtin)
        self.import_file_button = QPushButton("Import file…")
        self.import_file_button.clicked.connect(self.open_import_dialog)
        self.import_real_button = QPushButton("Import coded texts…")
        self.import_real_button.clicked.connect(self.open_real_dialog)
        for widget in (QLabel("Classification:"), self.builtin, self.import_builtin_button,
                       self.import_file_button):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.import_real_button)
        layout.addLayout(bar)
        self.summary = QLabel()
        layout.addWidget(self.summary)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search codes, titles and notes  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.search.returnPressed.connect(self._search_enter)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.focus_search)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS, timeout=self.run_search)
        self.views = QStackedWidget()
        self.tree_model = CodeTreeModel()
        self.tree = QTreeView()
        self.tree.setModel(self.tree_model)
        self.tree.setUniformRowHeights(True)
        self.tree.setColumnWidth(0, 150)
        self.tree.selectionModel().currentChanged.connect(lambda cur, _prev: self._select(self.tree_model.code_at(cur)))
        self.results = QListWidget()
        self.results.currentItemChanged.connect(
            lambda cur, _prev: self._select(cur.data(Qt.ItemDataRole.UserRole) if cur else None))
        self.results.itemActivated.connect(lambda item: self.reveal(item.data(Qt.ItemDataRole.UserRole)))
        self.views.addWidget(self.tree)
        self.views.addWidget(self.results)
        self.result_count = QLabel()
        self.result_count.setTextFormat(Qt.TextFormat.PlainText)   # it quotes the user's query
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.result_count)
        left_layout.addWidget(self.views, 1)

        self.details = CodeDetails()
        self.details.code_clicked.connect(self.reveal)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.details)
        splitter.setSizes([460, 700])
        layout.addWidget(splitter, 1)
        ctx.changed.connect(self._changed)
        ctx.show_code.connect(self.reveal)

    # project and data -------------------------------------------------------------------------
    def on_project_changed(self, project: Project | None) -> None:
        self.tree_model.set_project(project)
        self.search.clear()
        self.views.setCurrentWidget(self.tree)
        self.details.show_code(None, None)
        self._update_summary()

    def _changed(self, changes: Changes) -> None:
        if changes.classification:
            self.tree_model.set_project(self.project)
        elif self.details.code and changes.touches("realdata", "samples", "corrections"):
            self.details.show_code(self.project, self.details.code)   # its counts of texts changed
        if changes.touches("classification", "realdata"):
            self._update_summary()

    def _update_summary(self) -> None:
        project = self.project
        if project is None:
            self.summary.clear()
            return
        info = project.summary()
        has_codes = info["codes"] > 0
        for widget in (self.builtin, self.import_builtin_button, self.import_file_button):
            widget.setEnabled(not has_codes)
        self.import_real_button.setEnabled(has_codes)
        if has_codes:
            name = (info["classification"] or {}).get("name", "?")
            # The name comes from the user's file: escaped, so '<h1>' shows as text, not a heading.
            self.summary.setText(f"<b>{html.escape(str(name))}</b>: {info['codes']:,} codes, {info['leaf_codes']:,} leaf codes, "
                                 f"{info['links']:,} excludes links · real texts: {info['real_train']:,} train, "
                                 f"{info['real_test']:,} test")
        else:
            self.summary.setText("No classification yet: import a built-in one or your own file.")

    # imports ----------------------------------------------------------------------------------
    def import_selected_builtin(self) -> None:
        project, name = self.project, self.builtin.currentData()
        if project is None:
            return
        self.import_builtin_button.setEnabled(False)
        self.summary.setText(f"Importing {self.builtin.currentText()}…")
        self.ctx.run(f"Import {name}", lambda progress, cancel: import_builtin(project, name),
                     on_success=self._builtin_imported, on_finish=self._update_summary)

    def _builtin_imported(self, result) -> None:
        levels = " / ".join(str(n) for n in result.per_level.values())
        self.ctx.notify(f"Imported {result.name}: {result.codes:,} codes ({result.leaf_codes:,} leaf codes; "
                        f"per level {levels}), {result.links:,} links from the excludes.")

    def open_import_dialog(self) -> ClassificationImportDialog:
        dialog = ClassificationImportDialog(self.ctx, self)
        dialog.open()
        return dialog

    def open_real_dialog(self) -> RealTextsImportDialog:
        dialog = RealTextsImportDialog(self.ctx, self)
        dialog.open()
        return dialog

    # search and selection ---------------------------------------------------------------------
    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def run_search(self) -> None:
        query = self.search.text().strip()
        if not query or self.project is None:
            self.views.setCurrentWidget(self.tree)
            self.result_count.clear()
            return
        hits = search_codes(self.project, query, limit=SEARCH_LIMIT)
        self.results.clear()
        for code in hits:
            item = QListWidgetItem(f"{code.code}   {code.title}")
            item.setData(Qt.ItemDataRole.UserRole, code.code)
            self.results.addItem(item)
        more = "+" if len(hits) == SEARCH_LIMIT else ""
        noun = "code matches" if len(hits) == 1 and not more else "codes match"
        self.result_count.setText(f"{len(hits)}{more} {noun} “{query}”")
        self.views.setCurrentWidget(self.results)
        if hits:
            self.results.setCurrentRow(0)

    def _search_enter(self) -> None:
        self._search_timer.stop()
        self.run_search()
        if self.results.count():
            self.results.setFocus()

    def _select(self, code: str | None) -> None:
        if code is not None:
            self.details.show_code(self.project, code)

    def reveal(self, code: str) -> None:
        """Show a code in the tree (expanding its path) and in the details pane."""
        index = self.tree_model.index_of(code)
        if not index.isValid():
            return
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.result_count.clear()
        self.views.setCurrentWidget(self.tree)
        parent = index.parent()
        while parent.isValid():
            self.tree.expand(parent)
            parent = parent.parent()
        self.tree.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.tree.scrollTo(index)
        self.details.show_code(self.project, code)
