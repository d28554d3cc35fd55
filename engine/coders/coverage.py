"""Which codes a coder was trained for, and how that compares with the whole classification.

A coder trained on divisions 10-11 can only answer with codes of 10-11: it gives "software development
consultancy" a cider code with confidence. Its evaluation must use the test texts of its own codes, and
the coding panel must say that it knows only part of the classification.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.coders.registry import ModelRecord, get_model, load_coder
from engine.store.cache import KeyedCache
from engine.store.project import Project


@dataclass(frozen=True)
class Coverage:
    """The leaf codes a coder knows, against the classification's leaf codes."""

    codes: tuple[str, ...]          # the coder's codes, in classification order
    total: int                      # leaf codes in the classification
    groups: tuple[str, ...]         # the fewest codes whose leaves are exactly `codes` (e.g. '10', '11')

    @property
    def partial(self) -> bool:
        return len(self.codes) < self.total

    def describe(self) -> str:
        under = ""
        if self.groups and len(self.groups) <= 6:
            under = " (" + ", ".join(self.groups) + ")"
        return f"{len(self.codes):,} of the {self.total:,} codes{under}"


def trained_codes(project: Project, record: ModelRecord) -> list[str]:
    """The codes a model was trained for: stored with the model (its training lines per code), or, for a
    model registered before that was stored, the labels of its file."""
    data = record.data or {}
    per_code = data.get("per_code")
    if isinstance(per_code, dict) and per_code:
        return list(per_code)
    coder, _ = load_coder(project, record.id)
    return list(coder.codes)


def coverage(project: Project, codes: list[str]) -> Coverage:
    """How `codes` (a coder's) cover the classification's leaves, with the groups that sum them up."""
    rows = project.conn.execute("SELECT code, parent, is_leaf FROM codes ORDER BY ord").fetchall()
    parent = {c: p for c, p, _ in rows}
    leaves = [c for c, _, leaf in rows if leaf]
    known = set(codes)
    ordered = tuple(c for c in leaves if c in known)
    # A node is covered when every leaf below it is known; the groups are the covered nodes whose
    # parent is not covered.
    below: dict[str, list[str]] = {}
    for leaf in leaves:
        node = parent.get(leaf)
        while node is not None:
            below.setdefault(node, []).append(leaf)
            node = parent.get(node)
    covered = {n for n, ls in below.items() if all(leaf in known for leaf in ls)} | set(ordered)
    order = {c: i for i, (c, _, _) in enumerate(rows)}
    groups = tuple(sorted((n for n in covered if parent.get(n) not in covered), key=order.get))
    return Coverage(ordered, len(leaves), groups)


_BY_MODEL: KeyedCache[Coverage] = KeyedCache()


def model_coverage(project: Project, model_id: int) -> Coverage:
    """A model's coverage, kept per project file, model file hash and classification size: the Code page
    asks on the GUI thread when a new coder arrives, so the training job works it out first."""
    record = get_model(project, model_id)
    (count,) = project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()
    return _BY_MODEL.get((str(project.path), model_id, record.sha256, count),
                         lambda: coverage(project, trained_codes(project, record)))
