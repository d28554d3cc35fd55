"""Short training lines from a code's title, includes and also-includes: the `notes` arm's data.

Other codes' excludes say where an activity goes ("growing of rice, see 01.12" in 01.11's excludes), so
with `redirected` a code also gets the excluded activities that point to it alone: the lines that mark
the boundaries the coders miss most ('wholesale of ..., see 46.xx' in a manufacturing class).
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from engine.classification import Code
from engine.store.project import Project
from engine.text import clean_text, normalise_key

# Headers that introduce a list rather than describe an activity ("This class includes:").
_HEADER = re.compile(
    r"^(?:this (?:class|group|division|section|subclass|industry|u\.s\. industry|sector|subsector) "
    r"(?:also )?(?:includes|comprises)(?: also)?|illustrative examples|examples?|includes?|also includes?)\s*:?\s*$",
    re.IGNORECASE)
# Boilerplate openings in front of the activity itself, NACE and NAICS style.
_LEAD_IN = re.compile(
    r"^(?:this (?:class|group|division|section|subclass|industry|u\.s\. industry|sector|subsector) "
    r"(?:also )?(?:includes|comprises)(?: also)?"
    r"(?: establishments (?:primarily )?engaged (?:in|as)(?: one or more of the following:)?)?)\s*:?\s*",
    re.IGNORECASE)
# NAICS stops describing the code at its cross-references; what follows names other codes.
_STOP = re.compile(r"^\s*cross-references\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[a-z0-9)])[.;]\s+(?=[A-Z(])")
_SUCH_AS = re.compile(r"(?:,?\s*such as|,?\s*including|,?\s*e\.g\.)?\s*:\s*$", re.IGNORECASE)
_NULL_CELLS = {"null", "none", "n/a", "#name?"}
# "The division excludes field construction": the lead-in of an excludes item written as a sentence.
_EXCLUDES_LEAD_IN = re.compile(
    r"^(?:this|the) (?:class|group|division|section|subclass|industry|u\.s\. industry) (?:also )?excludes?\s*:?\s*",
    re.IGNORECASE)
MIN_WORDS = 1
MAX_WORDS = 40


def _usable(text: str) -> bool:
    words = text.split()
    return MIN_WORDS <= len(words) <= MAX_WORDS and any(ch.isalpha() for ch in text)


def lines_from_note(note: str) -> list[str]:
    """Split one notes field into activity lines: bullet items, sub-items joined to their head, sentences."""
    if not note or note.strip().casefold() in _NULL_CELLS:
        return []
    out: list[str] = []
    head = ""   # the last top-level bullet ending in "such as:", which sub-items ("  . wheat") complete
    for raw in note.splitlines():
        if _STOP.match(raw):
            break
        stripped = raw.strip()
        if not stripped or _HEADER.match(stripped):
            continue
        is_sub = bool(re.match(r"^\s+[.\-*\u2022]\s+", raw)) or stripped.startswith(". ")
        text = clean_text(stripped)
        if is_sub and head:
            out.append(f"{head} {text}")
            continue
        text = _LEAD_IN.sub("", text)
        if not text:
            continue
        if _SUCH_AS.search(text) and len(text.split()) <= 12:
            head = _SUCH_AS.sub("", text).strip()
            out.append(head)
            continue
        head = ""
        for sentence in _SENTENCE.split(text):
            sentence = _LEAD_IN.sub("", sentence.strip()).rstrip(" .;:")
            if sentence:
                out.append(sentence)
    return [line for line in out if _usable(line)]


def code_lines(code: Code) -> list[str]:
    """The training lines of one code: its title first, then its includes and also-includes, deduplicated."""
    seen: set[str] = set()
    result: list[str] = []
    for line in [code.title, *lines_from_note(code.includes), *lines_from_note(code.also_includes)]:
        key = normalise_key(line)
        if key and key not in seen and _usable(line):
            seen.add(key)
            result.append(line)
    return result


def redirected_lines(project: Project, codes: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Lines that other codes' excludes send to one leaf code, by that code (or only the given leaf codes).

    An excludes item that names one code ("growing of rice, see 01.12") is a line for it; a group or division
    that holds a single leaf stands for that leaf. An item that names several codes ("see 46.21, 46.22") says
    where none of its activity goes alone, so it is left out. Items come in the order they were imported."""
    parent = dict(project.conn.execute("SELECT code, parent FROM codes").fetchall())
    leaves = [c for (c,) in project.conn.execute("SELECT code FROM codes WHERE is_leaf")]
    under: dict[str, list[str]] = {}
    for leaf in leaves:
        node = leaf
        while node is not None:
            under.setdefault(node, []).append(leaf)
            node = parent.get(node)
    targets: dict[tuple[str, str], set[str]] = {}
    for source, target, text in project.conn.execute(
            "SELECT code, target, text FROM code_links WHERE kind = 'excludes' ORDER BY id"):
        targets.setdefault((source, text), set()).add(target)
    wanted = set(codes) if codes is not None else None
    out: dict[str, list[str]] = {}
    for (_, text), named in targets.items():
        reached = {leaf for target in named for leaf in under.get(target, [])}
        if len(reached) != 1:
            continue
        leaf = reached.pop()
        line = _EXCLUDES_LEAD_IN.sub("", clean_text(text)).rstrip(" .;:")
        if (wanted is None or leaf in wanted) and _usable(line):
            out.setdefault(leaf, []).append(line)
    return out


def notes_pairs(project: Project, codes: Iterable[str] | None = None, *,
                redirected: bool = False) -> Iterator[tuple[str, str]]:
    """(line, code) training pairs for every leaf code (or the given leaf codes), in classification order;
    with `redirected`, each code's own lines are followed by the lines other codes' excludes send to it."""
    wanted = set(codes) if codes is not None else None
    extra = redirected_lines(project, wanted) if redirected else {}
    sql = ("SELECT code, parent, level, title, includes, also_includes, excludes, notes, is_leaf "
           "FROM codes WHERE is_leaf ORDER BY ord")
    for row in project.conn.execute(sql).fetchall():
        if wanted is not None and row[0] not in wanted:
            continue
        code = Code(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))
        lines = code_lines(code)
        seen = {normalise_key(line) for line in lines}
        for line in extra.get(code.code, []):
            key = normalise_key(line)
            if key and key not in seen:
                seen.add(key)
                lines.append(line)
        for line in lines:
            yield line, code.code
