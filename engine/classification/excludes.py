"""Split excludes notes into items and find the codes each item points to."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "see 01.12", "see division 10", "classified in class 81.30", "see 46.21, 46.22 and 46.23"
_REFERENCE = re.compile(
    r"\b(?:see(?:\s+also)?|classified\s+(?:in|under)|included\s+in|are\s+classified\s+in|belongs?\s+(?:in|to))\b",
    re.IGNORECASE)
_HEADER = re.compile(r"^\s*this\s+(?:class|group|division|section|item|industry)\s+(?:also\s+)?excludes\s*:?\s*$",
                     re.IGNORECASE)
_ITEM_START = re.compile(r"^\s*[-\u2022*]\s*")


@dataclass(frozen=True)
class ExcludeItem:
    text: str            # the activity that is excluded, without the reference
    references: str      # the part of the item that names where it goes


def split_items(excludes: str) -> list[str]:
    """The excludes text as a list of items: bulleted lines, or sentences of free text."""
    items: list[str] = []
    current: list[str] = []
    for line in excludes.splitlines():
        if not line.strip() or _HEADER.match(line):
            if current:
                items.append(" ".join(current))
                current = []
            continue
        if _ITEM_START.match(line):
            if current:
                items.append(" ".join(current))
            current = [_ITEM_START.sub("", line).strip()]
        else:
            current.append(line.strip())
    if current:
        items.append(" ".join(current))
    return [i for i in (re.sub(r"\s+", " ", x).strip() for x in items) if i]


def parse_item(item: str) -> ExcludeItem | None:
    """Split "growing of rice, see 01.12" into its text and reference part; None if it names no place."""
    match = _REFERENCE.search(item)
    if not match:
        return None
    text = item[: match.start()].rstrip(" ,;:-(").strip()
    if not text:
        text = item.strip()
    return ExcludeItem(text=text, references=item[match.end():])


def find_codes(references: str, pattern: re.Pattern[str]) -> list[str]:
    return [m.group(0) for m in pattern.finditer(references)]
