"""Any classification from a CSV or JSON file, with a mapping from our fields to the file's columns.

When no parent column is mapped, the parent of a code is derived by this rule: strip every
character that is not a letter or digit from all codes; the parent is the code whose stripped
form is the longest *proper prefix* of this code's stripped form. `01.11` -> `01.1` -> `01`;
`1111` (ISCO) -> `111` -> `11` -> `1`. A code with no such prefix is a top-level code.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import ClassificationError, Problem
from engine.classification.excludes import (code_at_end, compile_pattern, custom_links, elsewhere_section, parse_item,
                                            split_items)
from engine.classification.model import ParsedClassification, RawCode, RawLink
from engine.classification.reading import read_csv, read_json_records

# Deeper than any official classification (ISCO, NACE, NAICS, ISIC have 4-6 levels), with room to spare.
MAX_LEVEL = 20
_TOKEN = re.compile(r"[A-Za-z]?\d[\w.\-]*\w|\b[A-Z]\b")


@dataclass
class ColumnMapping:
    """Which column of the file holds each field. Only `code` and `title` are required.

    In a CSV file every mapped column must exist; in JSON, objects may omit optional fields.
    """

    code: str = "code"
    title: str = "title"
    parent: str | None = None
    level: str | None = None
    includes: str | None = None
    also_includes: str | None = None
    excludes: str | None = None
    notes: str | None = None

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> "ColumnMapping":
        """From ['code=Code', 'title=Name', ...] as typed on the command line."""
        fields = {}
        for pair in pairs:
            key, sep, column = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(f"bad mapping '{pair}': use FIELD=COLUMN with FIELD one of "
                                 + ", ".join(cls.__dataclass_fields__))
            fields[key] = column.strip()
        return cls(**fields)

    def columns(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


def _key(code: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", code)


def derive_parents(codes: list[RawCode]) -> None:
    by_key = {_key(c.code): c.code for c in codes}
    for raw in codes:
        key = _key(raw.code)
        raw.parent = None
        for cut in range(len(key) - 1, 0, -1):
            if key[:cut] in by_key and by_key[key[:cut]] != raw.code:
                raw.parent = by_key[key[:cut]]
                break


def parse_generic(path: str | Path, mapping: ColumnMapping, *, encoding: str = "utf-8",
                  name: str | None = None, level_names: list[str] | None = None,
                  language: str = "en", strict_links: bool = True,
                  excludes_pattern: str | None = None) -> ParsedClassification:
    """Read a classification file through a column mapping; links come from the excludes (see _links).

    `excludes_pattern`: a regular expression for references the built-in forms miss; its group `code`
    (or its only group, or the whole match) is the code a line of the excludes points to.
    """
    path = Path(path)
    columns = mapping.columns()
    try:
        pattern = compile_pattern(excludes_pattern) if excludes_pattern else None
    except ValueError as exc:
        raise ClassificationError([Problem(str(path), 0, str(exc), "excludes pattern")]) from None
    if path.suffix.lower() == ".json":
        records = read_json_records(path, encoding)
        if records:
            problems = [Problem(str(path), row, f"field '{col}' is missing", col)
                        for row, rec in records for col in (mapping.code, mapping.title) if col not in rec]
            # str() would turn true, [..] or {..} into text that is in no file; refuse them instead.
            problems += [Problem(str(path), row, f"field '{col}' holds a JSON {type(rec[col]).__name__}, "
                                 "not text or a number", col)
                         for row, rec in records for col in columns.values()
                         if isinstance(rec.get(col), (bool, list, dict))]
            if problems:
                raise ClassificationError(problems)
        records = [(row, {k: str(v) for k, v in rec.items()}) for row, rec in records]
    else:
        _, records = read_csv(path, encoding, list(columns.values()))
    problems: list[Problem] = []
    codes: list[RawCode] = []
    for row, rec in records:
        get = lambda field: (rec.get(columns[field], "") if field in columns else "").strip()  # noqa: E731
        level = None
        if "level" in columns:
            raw_level = get("level")
            try:
                level = int(raw_level) if len(raw_level) <= 6 else None
            except ValueError:
                problems.append(Problem(str(path), row, f"level '{raw_level[:40]}' is not a whole number",
                                        columns["level"]))
                continue
            if level is None or not 1 <= level <= MAX_LEVEL:
                problems.append(Problem(str(path), row, f"level '{raw_level[:40]}' must be between 1 (the top) "
                                        f"and {MAX_LEVEL}", columns["level"]))
                continue
        codes.append(RawCode(code=get("code"), title=get("title"), row=row,
                             parent=(get("parent") or None) if "parent" in columns else None, level=level,
                             includes=get("includes"), also_includes=get("also_includes"),
                             excludes=get("excludes"), notes=get("notes")))
    if problems:
        raise ClassificationError(problems)
    if "parent" not in columns:
        derive_parents(codes)
    links = _links(codes, path, pattern)
    return ParsedClassification(name=name or path.stem, format="generic-" + path.suffix.lower().lstrip("."),
                                files=[path], codes=codes, links=links, level_names=level_names or [],
                                language=language, unresolved_links_are_errors=strict_links)


def _links(codes: list[RawCode], path: Path, pattern: re.Pattern[str] | None = None) -> list[RawLink]:
    """A reference is any code-like token after 'see' / 'classified in' / an arrow, the code that ends an
    ISCO-style line ("- Medical physicist - 2111"), or a match of the user's pattern. It is looked for in
    the excludes and in the lines under a notes text's "... classified elsewhere:" header. Unknown codes
    fail validation (or are reported, with lenient links)."""
    links: list[RawLink] = []
    for raw in codes:
        found: list[tuple[str, str]] = []
        text = "\n".join(t for t in (raw.excludes, elsewhere_section(raw.notes)) if t.strip())
        rest: list[str] = []
        for line in text.splitlines():
            if pattern is not None and (matched := custom_links(line, pattern)):
                found += matched
            elif (isco := code_at_end(line)) is not None:
                found.append(isco)
            else:
                rest.append(line)
        for item in split_items("\n".join(rest)):
            parsed = parse_item(item)
            if parsed is None:
                continue
            found += [(parsed.text, t.rstrip(".")) for t in _TOKEN.findall(parsed.references)]
        for item_text, target in dict.fromkeys(found):
            if target != raw.code:
                links.append(RawLink(raw.code, target, item_text, raw.row, str(path)))
    return links
