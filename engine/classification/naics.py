"""NAICS 2017: the Census descriptions file plus the cross-references file as excludes (cp1252)."""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import ClassificationError, Problem
from engine.classification.model import ParsedClassification, RawCode, RawLink
from engine.classification.reading import read_csv

LEVEL_NAMES = ["sector", "subsector", "industry group", "NAICS industry", "national industry"]
_REFERENCE = re.compile(
    r"classified\s+(?:\w+\s+){0,8}?in\s+(?:the\s+)?(?:U\.S\.\s+)?(?:Industry|Industry Group|Subsector|Sector)\s+"
    r"(\d{2,6}|\d{2}-\d{2})", re.IGNORECASE)
_MORE_CODES = re.compile(r"(?:,|\bor|\band)\s+(?:in\s+)?(?:U\.S\.\s+)?(?:Industry|Industry Group|Subsector|Sector)\s+(\d{2,6})")
_SECTOR_RANGES = {"31": "31-33", "32": "31-33", "33": "31-33", "44": "44-45", "45": "44-45",
                  "48": "48-49", "49": "48-49"}


def clean_title(title: str) -> str:
    """Strip the Census 'T' marker (trilateral code) that ends many titles."""
    title = title.strip()
    if re.search(r"[a-z)]T$", title):
        title = title[:-1]
    return title.strip()


def _activity(text: str) -> str:
    """'Establishments primarily engaged in growing peas are' -> 'growing peas'."""
    text = re.sub(r"(?:--|\s)+are\s*$", "", text.strip()).strip(" -,;")
    text = re.sub(r"^establishments\s+(?:primarily\s+)?engaged\s+in\s+", "", text, flags=re.IGNORECASE)
    return text[:1].upper() + text[1:]


def parent_of(code: str) -> str | None:
    if "-" in code or len(code) == 2:
        return None
    if len(code) == 3:
        return _SECTOR_RANGES.get(code[:2], code[:2])
    return code[:-1]


def parse_naics(descriptions: str | Path, cross_references: str | Path | None = None, *,
                encoding: str = "cp1252", xref_encoding: str = "utf-8",
                name: str = "NAICS 2017") -> ParsedClassification:
    descriptions = Path(descriptions)
    _, rows = read_csv(descriptions, encoding, ["Code", "Title", "Description"])
    codes: list[RawCode] = []
    problems: list[Problem] = []
    for row_no, row in rows:
        code = row["Code"].strip()
        if not re.fullmatch(r"\d{2,6}|\d{2}-\d{2}", code):
            problems.append(Problem(str(descriptions), row_no, f"'{code}' is not a NAICS code", "Code"))
            continue
        description = row["Description"].strip()
        # The cross-reference lead-in is only a header for the items of the cross-references file.
        description = re.sub(r"\s*Cross-References\.\s*Establishments primarily engaged in--\s*$", "",
                             description).strip()
        if re.fullmatch(r"See industry description for \d{6}\.?", description):
            description = ""
        codes.append(RawCode(code=code, title=clean_title(row["Title"]), row=row_no, parent=parent_of(code),
                             includes=description))
    if problems:
        raise ClassificationError(problems)
    links: list[RawLink] = []
    files = [descriptions]
    if cross_references is not None:
        cross_references = Path(cross_references)
        files.append(cross_references)
        _, xrows = read_csv(cross_references, xref_encoding, ["Code", "CrossReference"])
        excludes: dict[str, list[str]] = {}
        no_code = 0
        for row_no, row in xrows:
            code, text = row["Code"].strip(), " ".join(row["CrossReference"].split())
            if not text:
                continue
            excludes.setdefault(code, []).append(text)
            match = _REFERENCE.search(text)
            if not match:
                no_code += 1
                continue
            activity = _activity(text[: match.start()])
            targets = [_SECTOR_RANGES.get(t, t) for t in [match.group(1)] + _MORE_CODES.findall(text[match.end():])]
            for target in dict.fromkeys(targets):
                links.append(RawLink(code, target, activity, row_no, str(cross_references)))
        known = {c.code for c in codes}
        for raw in codes:
            if raw.code in excludes:
                raw.excludes = "\n".join(f"- {t}" for t in excludes[raw.code])
        orphans = sorted(set(excludes) - known)
        if orphans:
            raise ClassificationError([Problem(str(cross_references), None,
                                               f"cross-references for unknown codes: {', '.join(orphans[:10])}", "Code")])
    parsed = ParsedClassification(name=name, format="naics", files=files, codes=codes, links=links,
                                  level_names=list(LEVEL_NAMES), unresolved_links_are_errors=False)
    if cross_references is not None and no_code:
        parsed.warnings.append(f"{no_code} cross-references name no code (\"classified elsewhere based on ...\", "
                               "\"according to the primary activity\"): kept in the excludes text, no link")
    return parsed
