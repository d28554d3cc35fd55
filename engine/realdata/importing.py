"""Real coded texts: import from CSV, map their codes onto the classification, split train/test by hash."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.changes import Changes
from engine.classification.reading import read_csv
from engine.errors import Problem, ProjectError, RealDataError
from engine.paths import assets_dir
from engine.store.project import Project
from engine.text import clean_text, file_sha256, normalise_key

SPLIT_BUCKETS = 10_000
MAX_CODE_DIGITS = 32


def split_of(text_key: str, test_share: float = 0.5) -> str:
    """'test' or 'train', decided only by the normalised text, so a text never lands on both sides."""
    bucket = int(hashlib.sha256(text_key.encode("utf-8")).hexdigest()[:8], 16) % SPLIT_BUCKETS
    return "test" if bucket < test_share * SPLIT_BUCKETS else "train"


@dataclass(frozen=True)
class RealDataPreset:
    file: str
    text_column: str
    code_column: str
    encoding: str = "utf-8"
    code_digits: int | None = None
    classification: str = ""


PRESETS: dict[str, RealDataPreset] = {
    # UK SIC 2007 subclass -> NACE class: the first 4 digits are the NACE class (10110 -> 10.11).
    "uksic-index": RealDataPreset("uksic2007_alphabetical_index.csv", "Activity", "UK SIC 2007",
                                  code_digits=4, classification="nace2"),
    "naics-index": RealDataPreset("2017_NAICS_Index_File.csv", "INDEX ITEM DESCRIPTION", "NAICS17",
                                  encoding="cp1252", classification="naics2017"),
}


@dataclass
class RealImportResult:
    rows_read: int
    imported: int
    train: int
    test: int
    unknown_codes: dict[str, list[int]] = field(default_factory=dict)   # code -> rows
    duplicates: list[int] = field(default_factory=list)                # rows skipped as exact duplicates
    conflicts: list[tuple[int, str, str]] = field(default_factory=list)  # (row, code, other code)
    empty_rows: list[int] = field(default_factory=list)

    @property
    def changes(self) -> Changes:
        return Changes(realdata=True)

    def lines(self) -> list[str]:
        out = [f"read {self.rows_read} rows; imported {self.imported} (train {self.train}, test {self.test})"]
        if self.unknown_codes:
            listed = ", ".join(f"{c} ({len(r)} rows, first row {r[0]})" for c, r in sorted(self.unknown_codes.items())[:20])
            out.append(f"not imported: {sum(map(len, self.unknown_codes.values()))} rows with "
                       f"{len(self.unknown_codes)} codes not in the classification: {listed}")
        if self.duplicates:
            out.append(f"skipped {len(self.duplicates)} exact duplicates (rows {', '.join(map(str, self.duplicates[:10]))}"
                       + (", ..." if len(self.duplicates) > 10 else "") + ")")
        if self.conflicts:
            out.append(f"{len(self.conflicts)} texts also appear with another code (kept; first: row "
                       f"{self.conflicts[0][0]} {self.conflicts[0][1]} vs {self.conflicts[0][2]})")
        if self.empty_rows:
            out.append(f"skipped {len(self.empty_rows)} rows with an empty text")
        return out


def _code_resolver(project: Project, code_digits: int | None):
    codes = {row[0]: bool(row[1]) for row in project.conn.execute("SELECT code, is_leaf FROM codes")}
    by_digits: dict[str, str] = {}
    for code, is_leaf in codes.items():
        key = re.sub(r"[^0-9A-Za-z]", "", code)
        if is_leaf or key not in by_digits:
            by_digits[key] = code

    def resolve(raw: str) -> str | None:
        raw = raw.strip()
        if code_digits is None and raw in codes:
            return raw
        key = re.sub(r"[^0-9A-Za-z]", "", raw)
        return by_digits.get(key[:code_digits] if code_digits else key)

    return resolve


def import_real_texts(project: Project, path: str | Path, *, text_column: str, code_column: str,
                      encoding: str = "utf-8", code_digits: int | None = None,
                      test_share: float = 0.5) -> RealImportResult:
    """Import coded texts; codes outside the classification and exact duplicates are reported, not imported."""
    path = Path(path)
    if not 0 <= test_share < 1:
        raise RealDataError([Problem(str(path), None, f"test share {test_share} must be in [0, 1)")])
    if code_digits is not None and not 1 <= code_digits <= MAX_CODE_DIGITS:
        raise RealDataError([Problem(str(path), None, f"code digits {code_digits} must be between 1 and "
                                     f"{MAX_CODE_DIGITS} (how many leading characters of the code to keep)")])
    if project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()[0] == 0:
        raise ProjectError("import a classification into this project before importing coded texts")
    _, rows = read_csv(path, encoding, [text_column, code_column], error_cls=RealDataError)
    resolve = _code_resolver(project, code_digits)
    # The duplicate check reads and the inserts write inside one write transaction, so two imports
    # running at once cannot both insert the same text.
    with project.transaction() as conn:
        result = _plan_and_insert(conn, path, rows, resolve, text_column=text_column, code_column=code_column,
                                  code_digits=code_digits, test_share=test_share)
    return result


def _plan_and_insert(conn, path: Path, rows: list[tuple[int, dict[str, str]]], resolve, *, text_column: str,
                     code_column: str, code_digits: int | None, test_share: float) -> RealImportResult:
    seen: dict[str, set[str]] = {}
    for key, code in conn.execute("SELECT text_key, code FROM real_texts"):
        seen.setdefault(key, set()).add(code)
    result = RealImportResult(rows_read=len(rows), imported=0, train=0, test=0)
    to_insert: list[tuple] = []
    for row_no, row in rows:
        text = clean_text(row[text_column])
        if not text:
            result.empty_rows.append(row_no)
            continue
        code = resolve(row[code_column])
        if code is None:
            result.unknown_codes.setdefault(row[code_column].strip(), []).append(row_no)
            continue
        key = normalise_key(text)
        codes_for_key = seen.setdefault(key, set())
        if code in codes_for_key:
            result.duplicates.append(row_no)
            continue
        if codes_for_key:
            result.conflicts.append((row_no, code, sorted(codes_for_key)[0]))
        codes_for_key.add(code)
        to_insert.append((text, key, code, split_of(key, test_share), row_no))
    counts = Counter(item[3] for item in to_insert)
    result.imported, result.train, result.test = len(to_insert), counts["train"], counts["test"]
    report = {"unknown_codes": {c: len(r) for c, r in result.unknown_codes.items()},
              "duplicates": len(result.duplicates), "conflicts": len(result.conflicts),
              "empty_rows": len(result.empty_rows), "text_column": text_column, "code_column": code_column,
              "code_digits": code_digits, "test_share": test_share}
    if not to_insert:
        return result   # nothing imported: no `imports` row claims an import happened
    cur = conn.execute(
        "INSERT INTO imports (kind, format, source, sha256, rows, report) VALUES ('realdata', 'csv', ?, ?, ?, ?)",
        (str(path), file_sha256(path), len(to_insert), json.dumps(report)))
    conn.executemany(
        "INSERT INTO real_texts (text, text_key, code, split, source, import_id, source_row)"
        " VALUES (?, ?, ?, ?, 'import', ?, ?)",
        [(t, k, c, s, cur.lastrowid, r) for t, k, c, s, r in to_insert])
    return result


def import_preset(project: Project, preset: str, *, test_share: float = 0.5) -> RealImportResult:
    """Import one of the coded-text sets shipped in assets/realdata (e.g. the UK SIC index)."""
    try:
        spec = PRESETS[preset]
    except KeyError:
        raise ProjectError(f"no built-in coded texts '{preset}'; choose one of: {', '.join(PRESETS)}") from None
    return import_real_texts(project, assets_dir() / "realdata" / spec.file, text_column=spec.text_column,
                             code_column=spec.code_column, encoding=spec.encoding,
                             code_digits=spec.code_digits, test_share=test_share)


def real_texts(project: Project, split: str | None = None, codes: list[str] | None = None) -> list[tuple[str, str]]:
    """(text, code) pairs of one split (or both), optionally only for some codes."""
    sql, params = "SELECT text, code FROM real_texts", []
    clauses = []
    if split:
        clauses.append("split = ?")
        params.append(split)
    if codes is not None:
        clauses.append(f"code IN ({','.join('?' * len(codes))})")
        params.extend(codes)
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return [(t, c) for t, c in project.conn.execute(sql + " ORDER BY id", params)]
