"""The one classification model every importer produces, its validation, storage and queries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from engine.changes import Changes
from engine.classification.search import search_code_ids
from engine.errors import ClassificationError, Problem, ProjectError, UnknownCodeError
from engine.store.project import Project
from engine.text import file_sha256


@dataclass
class RawCode:
    """A code as read from a file, before validation. `row` is the 1-based row in the file."""

    code: str
    title: str
    row: int
    parent: str | None = None
    level: int | None = None
    includes: str = ""
    also_includes: str = ""
    excludes: str = ""
    notes: str = ""


@dataclass
class RawLink:
    """A reference from one code's excludes to another code, as parsed from the text."""

    code: str
    target: str
    text: str
    row: int
    file: str


@dataclass
class ParsedClassification:
    """Everything an importer read, ready to validate and write."""

    name: str
    format: str
    files: list[Path]
    codes: list[RawCode]
    links: list[RawLink] = field(default_factory=list)
    level_names: list[str] = field(default_factory=list)
    language: str = "en"
    # links whose target is not a code: for formats where the source itself is inconsistent
    # (NAICS refers to retired codes), reported instead of refused.
    unresolved_links_are_errors: bool = True
    warnings: list[str] = field(default_factory=list)
    # whether the titles lead with the activity ('Manufacture of ...', 'Wholesale of ...'), so that a
    # coder may rank by the activity a text names (engine.coders.heads); None: decided by the format
    activity_titles: bool | None = None


@dataclass(frozen=True)
class Link:
    code: str
    target: str
    text: str
    kind: str = "excludes"


@dataclass(frozen=True)
class Code:
    code: str
    parent: str | None
    level: int
    title: str
    includes: str
    also_includes: str
    excludes: str
    notes: str
    is_leaf: bool


@dataclass
class ImportResult:
    name: str
    codes: int
    leaf_codes: int
    per_level: dict[int, int]
    links: int
    unresolved_links: list[str]
    warnings: list[str]

    @property
    def changes(self) -> Changes:
        return Changes(classification=True)


def validate(parsed: ParsedClassification) -> tuple[list[Problem], list[str], list[RawLink]]:
    """Check the whole classification. Returns (problems, warnings, resolvable links)."""
    problems: list[Problem] = []
    warnings: list[str] = list(parsed.warnings)
    main_file = str(parsed.files[0]) if parsed.files else parsed.name
    by_code: dict[str, RawCode] = {}
    for raw in parsed.codes:
        if not raw.code:
            problems.append(Problem(main_file, raw.row, "empty code", "code"))
            continue
        if raw.code in by_code:
            problems.append(Problem(main_file, raw.row,
                                    f"duplicate code '{raw.code}' (first seen on row {by_code[raw.code].row})", "code"))
            continue
        by_code[raw.code] = raw
        if not raw.title.strip():
            problems.append(Problem(main_file, raw.row, f"empty title for code '{raw.code}'", "title"))
    for raw in by_code.values():
        if raw.parent is not None and raw.parent not in by_code:
            problems.append(Problem(main_file, raw.row,
                                    f"unknown parent '{raw.parent}' of code '{raw.code}'", "parent"))
        elif raw.parent == raw.code:
            problems.append(Problem(main_file, raw.row, f"code '{raw.code}' is its own parent", "parent"))
    problems.extend(_cycles(by_code, main_file))
    if not by_code and not problems:
        problems.append(Problem(main_file, None, "no codes found"))
    good_links: list[RawLink] = []
    unresolved: list[str] = []
    for link in parsed.links:
        if link.target in by_code and link.code in by_code:
            if link.target != link.code:
                good_links.append(link)
        elif parsed.unresolved_links_are_errors:
            problems.append(Problem(link.file, link.row,
                                    f"excludes of '{link.code}' link to unknown code '{link.target}'", "excludes"))
        else:
            unresolved.append(f"{link.code} -> {link.target}: {link.text[:80]}")
    if unresolved:
        warnings.append(f"{len(unresolved)} cross-references point to codes not in the classification")
    parsed._unresolved = unresolved  # type: ignore[attr-defined]
    return problems, warnings, good_links


def _cycles(by_code: dict[str, RawCode], file: str) -> list[Problem]:
    problems: list[Problem] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in by_code:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in by_code and state.get(node) != 2:
            if state.get(node) == 1:
                cycle = path[path.index(node):] + [node]
                problems.append(Problem(file, by_code[node].row, "parent cycle: " + " -> ".join(cycle), "parent"))
                break
            state[node] = 1
            path.append(node)
            node = by_code[node].parent
        for visited in path:
            state[visited] = 2
    return problems


def _levels(by_code: dict[str, RawCode]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def depth_of(code: str) -> int:
        chain = []
        node: str | None = code
        while node is not None and node not in depth:
            chain.append(node)
            node = by_code[node].parent
        base = depth[node] if node is not None else 0
        for item in reversed(chain):
            base += 1
            depth[item] = base
        return depth[code]

    for code in by_code:
        depth_of(code)
    return depth


def import_parsed(project: Project, parsed: ParsedClassification) -> ImportResult:
    """Validate, then write the classification in one transaction. A failure changes nothing."""
    problems, warnings, links = validate(parsed)
    if problems:
        raise ClassificationError(problems)
    existing = project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()[0]
    if existing:
        current = project.get_setting("classification", {}) or {}
        raise ProjectError(
            f"this project already holds the classification '{current.get('name', '?')}' "
            f"({existing} codes); create a new project for another classification"
        )
    by_code = {raw.code: raw for raw in parsed.codes}
    depth = _levels(by_code)
    parents = {raw.parent for raw in parsed.codes if raw.parent}
    rows = [
        (raw.code, raw.parent, raw.level if raw.level is not None else depth[raw.code], raw.title.strip(),
         raw.includes, raw.also_includes, raw.excludes, raw.notes, int(raw.code not in parents), i)
        for i, raw in enumerate(parsed.codes)
    ]
    unresolved = getattr(parsed, "_unresolved", [])
    report = {"warnings": warnings, "unresolved_links": unresolved}
    with project.transaction() as conn:
        conn.executemany(
            "INSERT INTO codes (code, parent, level, title, includes, also_includes, excludes, notes, is_leaf, ord)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO code_links (code, target, kind, text) VALUES (?, ?, 'excludes', ?)",
                         [(l.code, l.target, l.text) for l in links])
        conn.execute(
            "INSERT INTO imports (kind, format, source, sha256, rows, report) VALUES ('classification', ?, ?, ?, ?, ?)",
            (parsed.format, ";".join(str(f) for f in parsed.files),
             ";".join(file_sha256(f) for f in parsed.files if Path(f).is_file()), len(rows), json.dumps(report)))
        max_level = max(r[2] for r in rows)
        names = parsed.level_names or [f"level {i}" for i in range(1, max_level + 1)]
        project.set_setting("classification", {"name": parsed.name, "format": parsed.format,
                                                "language": parsed.language,
                                                **({"activity_titles": parsed.activity_titles}
                                                   if parsed.activity_titles is not None else {})})
        project.set_setting("level_names", names)
    per_level: dict[int, int] = {}
    for row in rows:
        per_level[row[2]] = per_level.get(row[2], 0) + 1
    return ImportResult(name=parsed.name, codes=len(rows), leaf_codes=sum(r[8] for r in rows),
                        per_level=dict(sorted(per_level.items())), links=len(links),
                        unresolved_links=unresolved, warnings=warnings)


# queries --------------------------------------------------------------------------------------

_COLUMNS = "code, parent, level, title, includes, also_includes, excludes, notes, is_leaf"


def _code(row: tuple) -> Code:
    return Code(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))


def get_code(project: Project, code: str) -> Code:
    row = project.conn.execute(f"SELECT {_COLUMNS} FROM codes WHERE code = ?", (code,)).fetchone()
    if row is None:
        raise UnknownCodeError(code)
    return _code(row)


def children(project: Project, code: str | None) -> list[Code]:
    sql = f"SELECT {_COLUMNS} FROM codes WHERE parent {'IS NULL' if code is None else '= ?'} ORDER BY ord"
    return [_code(r) for r in project.conn.execute(sql, () if code is None else (code,))]


def siblings(project: Project, code: str) -> list[Code]:
    parent = get_code(project, code).parent
    return [c for c in children(project, parent) if c.code != code]


def ancestors(project: Project, code: str) -> list[Code]:
    """The path from the root down to the code's parent."""
    path: list[Code] = []
    node = get_code(project, code).parent
    while node is not None:
        item = get_code(project, node)
        path.append(item)
        node = item.parent
    return list(reversed(path))


def leaf_codes(project: Project) -> list[Code]:
    return [_code(r) for r in project.conn.execute(f"SELECT {_COLUMNS} FROM codes WHERE is_leaf ORDER BY ord")]


def leaf_codes_under(project: Project, tops: Iterable[str]) -> list[str]:
    """Leaf codes below (or equal to) any of `tops`, e.g. NACE divisions ['10', '11'], in classification order.

    Every top must be a code of the classification (UnknownCodeError otherwise): a typo in a subset
    must not silently train or generate for nothing.
    """
    wanted = set(tops)
    rows = project.conn.execute("SELECT code, parent, is_leaf FROM codes ORDER BY ord").fetchall()
    parent = {code: up for code, up, _ in rows}
    for top in sorted(wanted):
        if top not in parent:
            raise UnknownCodeError(top)
    out = []
    for code, _, is_leaf in rows:
        node: str | None = code
        while node is not None and node not in wanted:
            node = parent.get(node)
        if node is not None and is_leaf:
            out.append(code)
    return out


def links_from(project: Project, code: str) -> list[Link]:
    return [Link(*r) for r in project.conn.execute(
        "SELECT code, target, text, kind FROM code_links WHERE code = ? ORDER BY id", (code,))]


def links_to(project: Project, code: str) -> list[Link]:
    return [Link(*r) for r in project.conn.execute(
        "SELECT code, target, text, kind FROM code_links WHERE target = ? ORDER BY id", (code,))]


def level_names(project: Project) -> list[str]:
    return project.get_setting("level_names", []) or []


def search_codes(project: Project, query: str, *, limit: int = 50, in_notes: bool = True,
                 leaves_only: bool = False) -> list[Code]:
    """Codes matching what was typed: a code prefix, stemmed words of titles and notes (FTS5), ranked;
    words with typos fall back to the closest indexed words (rapidfuzz). See classification/search.py."""
    return [get_code(project, code) for code in search_code_ids(project, query, limit=limit, in_notes=in_notes,
                                                                leaves_only=leaves_only)]
