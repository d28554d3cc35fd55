"""NACE Rev. 2 in Eurostat's RAMON CSV layout, with the lossless repair of codes that lost their zeros."""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import ClassificationError, Problem
from engine.classification.excludes import find_codes, parse_item, split_items
from engine.classification.model import ParsedClassification, RawCode, RawLink
from engine.classification.reading import read_csv

COLUMNS = ["Level", "Code", "Parent", "Description", "This item includes", "This item also includes",
           "Rulings", "This item excludes"]
LEVEL_NAMES = ["section", "division", "group", "class"]
_CODE_REF = re.compile(r"(?<![\d.])\d{2}(?:\.\d{1,2})?(?![\d])|(?<=section )[A-U]\b|(?<=sections )[A-U]\b")
_SPREADSHEET_ERRORS = {"#NAME?", "#VALUE!", "#REF!", "#N/A"}


def repair_code(code: str, level: int) -> str:
    """Undo a spreadsheet's removal of zeros: '1.3' at level 4 is '01.30', '1' at level 2 is '01'."""
    code = code.strip()
    if level == 1:
        return code
    if not re.fullmatch(r"\d+(\.\d+)?", code):
        raise ValueError(f"'{code}' is not a numeric NACE code")
    whole, _, decimals = code.partition(".")
    if level == 2:
        return f"{int(whole):02d}"
    if level == 3:
        return f"{int(whole):02d}.{decimals or '0'}"
    if level == 4:
        return f"{int(whole):02d}.{(decimals or '').ljust(2, '0')}"
    raise ValueError(f"level {level} is not a NACE level (1-4)")


def _cell(value: str) -> str:
    return "" if value.strip() in _SPREADSHEET_ERRORS else value.strip()


def parse_nace_ramon(path: str | Path, *, encoding: str = "utf-8", name: str = "NACE Rev. 2") -> ParsedClassification:
    path = Path(path)
    _, rows = read_csv(path, encoding, COLUMNS)
    problems: list[Problem] = []
    codes: list[RawCode] = []
    for row_no, row in rows:
        try:
            level = int(row["Level"])
            if not 1 <= level <= 4:
                raise ValueError
        except ValueError:
            problems.append(Problem(str(path), row_no, f"level '{row['Level']}' is not 1, 2, 3 or 4", "Level"))
            continue
        try:
            code = repair_code(row["Code"], level)
            parent = repair_code(row["Parent"], level - 1) if row["Parent"].strip() else None
        except ValueError as exc:
            problems.append(Problem(str(path), row_no, str(exc), "Code"))
            continue
        if level > 1 and parent is None:
            problems.append(Problem(str(path), row_no, f"code '{code}' at level {level} has no parent", "Parent"))
            continue
        codes.append(RawCode(code=code, title=_cell(row["Description"]), row=row_no, parent=parent, level=level,
                             includes=_cell(row["This item includes"]),
                             also_includes=_cell(row["This item also includes"]),
                             excludes=_cell(row["This item excludes"]), notes=_cell(row["Rulings"])))
    if problems:
        raise ClassificationError(problems)
    links: list[RawLink] = []
    for raw in codes:
        for item in split_items(raw.excludes):
            parsed = parse_item(item)
            if parsed is None:
                continue
            for target in dict.fromkeys(find_codes(parsed.references, _CODE_REF)):
                links.append(RawLink(raw.code, target, parsed.text, raw.row, str(path)))
    return ParsedClassification(name=name, format="nace-ramon", files=[path], codes=codes, links=links,
                                level_names=list(LEVEL_NAMES))
