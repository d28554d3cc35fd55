"""What the project holds for a code and every code below it: real, synthetic, accepted texts, corrections."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import UnknownCodeError
from engine.store.project import Project

_SUBTREE = """
WITH RECURSIVE subtree(code) AS (
    SELECT ? UNION ALL SELECT codes.code FROM codes JOIN subtree ON codes.parent = subtree.code
)
"""


@dataclass(frozen=True)
class CodeCounts:
    """Texts held for a code and every code below it."""

    real_train: int
    real_test: int
    synthetic: int
    accepted: int
    corrections: int


def code_counts(project: Project, code: str) -> CodeCounts:
    if project.conn.execute("SELECT 1 FROM codes WHERE code = ?", (code,)).fetchone() is None:
        raise UnknownCodeError(code)
    conn = project.conn

    def one(sql: str) -> int:
        return conn.execute(_SUBTREE + sql, (code,)).fetchone()[0]

    return CodeCounts(
        real_train=one("SELECT COUNT(*) FROM real_texts WHERE split = 'train' AND code IN subtree"),
        real_test=one("SELECT COUNT(*) FROM real_texts WHERE split = 'test' AND code IN subtree"),
        synthetic=one("SELECT COUNT(*) FROM samples WHERE code IN subtree"),
        accepted=one("SELECT COUNT(*) FROM samples WHERE status = 'accepted' AND code IN subtree"),
        corrections=one("SELECT COUNT(*) FROM corrections WHERE chosen_code IN subtree"),
    )
