"""Uncoded texts: the answers an office has but never coded, imported from a CSV with only a text column.

They train nothing by themselves; `statcoder label` (engine.assist.pseudo) codes them with the best coder
and the LLM judge, and the confident labels become a training source of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.changes import Changes
from engine.classification.reading import read_csv
from engine.errors import Problem, RealDataError
from engine.store.project import Project
from engine.text import clean_text, file_sha256, normalise_key


@dataclass
class UncodedImportResult:
    rows_read: int
    imported: int
    duplicates: list[int] = field(default_factory=list)     # rows whose text is already uncoded (or twice here)
    already_coded: list[int] = field(default_factory=list)  # rows whose text is already a real coded text
    empty_rows: list[int] = field(default_factory=list)

    @property
    def changes(self) -> Changes:
        return Changes.of("realdata") if self.imported else Changes()

    def lines(self) -> list[str]:
        out = [f"read {self.rows_read} rows; imported {self.imported} uncoded texts"]
        if self.duplicates:
            out.append(f"skipped {len(self.duplicates)} duplicates (first row {self.duplicates[0]})")
        if self.already_coded:
            out.append(f"skipped {len(self.already_coded)} texts that are already coded (first row "
                       f"{self.already_coded[0]})")
        if self.empty_rows:
            out.append(f"skipped {len(self.empty_rows)} rows with an empty text")
        return out


def import_uncoded_texts(project: Project, path: str | Path, *, text_column: str,
                         encoding: str = "utf-8") -> UncodedImportResult:
    """Import the texts of one column; duplicates and texts already coded are reported, not imported.

    A missing column or an unreadable file raises RealDataError naming the file, row and column, and
    nothing is written.
    """
    path = Path(path)
    _, rows = read_csv(path, encoding, [text_column], error_cls=RealDataError)
    if not rows:
        raise RealDataError([Problem(str(path), None, "the file has a header but no rows")])
    result = UncodedImportResult(rows_read=len(rows), imported=0)
    with project.transaction() as conn:
        seen = {k for (k,) in conn.execute("SELECT text_key FROM uncoded_texts")}
        coded = {k for (k,) in conn.execute("SELECT text_key FROM real_texts")}
        to_insert = []
        for row_no, row in rows:
            text = clean_text(row[text_column])
            if not text:
                result.empty_rows.append(row_no)
                continue
            key = normalise_key(text)
            if key in coded:
                result.already_coded.append(row_no)
                continue
            if key in seen:
                result.duplicates.append(row_no)
                continue
            seen.add(key)
            to_insert.append((text, key, row_no))
        report = {"text_column": text_column, "duplicates": len(result.duplicates),
                  "already_coded": len(result.already_coded), "empty_rows": len(result.empty_rows)}
        if to_insert:   # nothing imported: no `imports` row claims an import happened
            cur = conn.execute(
                "INSERT INTO imports (kind, format, source, sha256, rows, report) VALUES ('uncoded', 'csv', ?, ?, ?, ?)",
                (str(path), file_sha256(path), len(to_insert), json.dumps(report)))
            conn.executemany("INSERT INTO uncoded_texts (text, text_key, import_id, source_row) VALUES (?, ?, ?, ?)",
                             [(t, k, cur.lastrowid, r) for t, k, r in to_insert])
        result.imported = len(to_insert)
    return result


def uncoded_count(project: Project) -> int:
    return project.conn.execute("SELECT COUNT(*) FROM uncoded_texts").fetchone()[0]
