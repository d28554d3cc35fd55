"""A lazy tree model of the classification: children are read from the project when a node opens."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt

from engine.classification import Code, ancestors, children
from engine.store.project import Project

Index = QModelIndex | QPersistentModelIndex


@dataclass(eq=False)
class Node:
    code: Code | None            # None for the invisible root
    parent: "Node | None"
    row: int
    kids: list["Node"] | None = field(default=None)


class CodeTreeModel(QAbstractItemModel):
    """Two columns, code and title. Nodes are created on first access, so a huge classification opens fast."""

    HEADERS = ("Code", "Title")

    def __init__(self, project: Project | None = None) -> None:
        super().__init__()
        self.project: Project | None = None
        self.root = Node(None, None, 0)
        self.by_code: dict[str, Node] = {}
        self.set_project(project)

    def set_project(self, project: Project | None) -> None:
        self.beginResetModel()
        self.project = project
        self.root = Node(None, None, 0)
        self.by_code = {}
        self.endResetModel()

    def _kids(self, node: Node) -> list[Node]:
        if node.kids is None:
            codes = children(self.project, node.code.code if node.code else None) if self.project else []
            node.kids = [Node(code, node, row) for row, code in enumerate(codes)]
            for kid in node.kids:
                self.by_code[kid.code.code] = kid
        return node.kids

    def _node(self, index: Index) -> Node:
        return index.internalPointer() if index.isValid() else self.root

    # QAbstractItemModel -----------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        kids = self._kids(self._node(parent))
        if 0 <= row < len(kids) and 0 <= column < len(self.HEADERS):
            return self.createIndex(row, column, kids[row])
        return QModelIndex()

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node: Node = index.internalPointer()
        if node.parent is None or node.parent is self.root:
            return QModelIndex()
        return self.createIndex(node.parent.row, 0, node.parent)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        if parent.column() > 0:
            return 0
        node = self._node(parent)
        if node.code is not None and node.code.is_leaf:
            return 0
        return len(self._kids(node))

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802 - Qt's name
        node = self._node(parent)
        if node.code is None:
            return self.project is not None
        return not node.code.is_leaf

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return len(self.HEADERS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        code = self._node(index).code
        if role == Qt.ItemDataRole.DisplayRole:
            return code.code if index.column() == 0 else code.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{code.code}  {code.title}"
        if role == Qt.ItemDataRole.UserRole:
            return code.code
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    # lookups ----------------------------------------------------------------------------------
    def code_at(self, index: Index) -> str | None:
        return self._node(index).code.code if index.isValid() else None

    def index_of(self, code: str) -> QModelIndex:
        """The index of a code, loading the nodes on its path from the root."""
        if self.project is None:
            return QModelIndex()
        node = self.root
        for step in [a.code for a in ancestors(self.project, code)] + [code]:
            kids = self._kids(node)
            match = next((kid for kid in kids if kid.code.code == step), None)
            if match is None:
                return QModelIndex()
            node = match
        return self.createIndex(node.row, 0, node)
