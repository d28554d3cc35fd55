"""Split excludes notes into items and find the codes each item points to.

The ways notes point elsewhere that are recognised: NACE's "growing of rice, see 01.12", "(see 2221)",
"classified in 2221", "→ 2221", and ILO ISCO-08's "Some related occupations classified elsewhere:"
lines of the form "- Medical physicist - 2111" (`code_at_end`). A classification that says it another
way gets a regular expression of its own (`custom_links`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "see 01.12", "see division 10", "classified in class 81.30", "see 46.21, 46.22 and 46.23"
_REFERENCE = re.compile(
    r"(?:\b(?:see(?:\s+also)?|classified\s+(?:in|under)|included\s+in|are\s+classified\s+in|belongs?\s+(?:in|to))\b"
    r"|\u2192|->|\u21d2|=>)",
    re.IGNORECASE)
_HEADER = re.compile(r"^\s*(?:this\s+(?:class|group|division|section|item|industry)\s+(?:also\s+)?excludes"
                     r"|(?:some\s+)?related\s+\w+\s+classified\s+elsewhere|excluded\s+occupations)\s*:?\s*$",
                     re.IGNORECASE)
# The header under which ISCO-style notes list related items with their codes, in a notes text.
ELSEWHERE_HEADER = re.compile(r"^\s*(?:some\s+)?related\s+\w+\s+classified\s+elsewhere\s*:?\s*$", re.IGNORECASE)
_ITEM_START = re.compile(r"^\s*[-\u2022*\u2013\u2014]\s*")
# ISCO-08: "- Medical physicist - 2111" (a dash, the item, a dash and the code at the end of the line).
_CODE_AT_END = re.compile(r"^\s*(?:[-\u2022*\u2013\u2014]\s*)?(?P<text>\S.*?)\s+[-\u2013\u2014]\s*"
                          r"(?P<code>[A-Za-z]?\d[\w.]*?)\s*[.;,]?\s*$")


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


def code_at_end(line: str) -> tuple[str, str] | None:
    """(item, code) for an ISCO-style line "- Medical physicist - 2111"; None for any other line."""
    match = _CODE_AT_END.match(line)
    if match is None or _REFERENCE.search(match.group("text")):
        return None
    return match.group("text").strip(), match.group("code")


def elsewhere_section(notes: str) -> str:
    """The lines of a notes text under its "... classified elsewhere:" header (up to a blank line)."""
    lines = notes.splitlines()
    for i, line in enumerate(lines):
        if ELSEWHERE_HEADER.match(line):
            section = []
            for item in lines[i + 1:]:
                if not item.strip():
                    if section:
                        break
                    continue
                section.append(item)
            return "\n".join(section)
    return ""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A user's excludes pattern: a regular expression whose group `code` (or first group, or whole
    match) is the code an excludes line points to, and optional group `text` the excluded item."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"the excludes pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.groups and "code" not in compiled.groupindex and compiled.groups > 1:
        raise ValueError(f"the excludes pattern {pattern!r} has {compiled.groups} groups: name the one that holds "
                         "the code (?P<code>...)")
    return compiled


def custom_links(line: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(item, code) for every match of a user's pattern in a line."""
    found = []
    for match in pattern.finditer(line):
        if "code" in pattern.groupindex:
            code = match.group("code")
        else:
            code = match.group(1) if pattern.groups else match.group(0)
        if not code:
            continue
        if "text" in pattern.groupindex and match.group("text"):
            text = match.group("text")
        else:
            text = pattern.sub(" ", line)
        text = re.sub(r"\s+", " ", _ITEM_START.sub("", text)).strip(" ,;:-()\u2013\u2014") or line.strip()
        found.append((text, code.strip().rstrip(".")))
    return found
