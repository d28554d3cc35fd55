"""What prompts are grounded in: a code's note lines, excluded items, siblings and key terms."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.classification import Code, ancestors, get_code, links_to, siblings
from engine.classification.excludes import parse_item, split_items
from engine.store.project import Project

_HEADER = re.compile(r"^\s*this\s+\w+\s+(?:also\s+)?(?:includes|excludes)\s*:?\s*$", re.IGNORECASE)
_ITEM = re.compile(r"^\s*[-\u2022*]\s*")
_SUBITEM = re.compile(r"^\s*\.\s+")
_NEC = re.compile(r"\bn\.e\.c\b|^other\b|\bother\b.*\bn\.e\.c|\bnot elsewhere classified\b", re.IGNORECASE)
_STOP = set("""a an and are as at be by for from in into is it its of on or other others such than that the their
these this those to with without etc n.e.c nec e.g i.e incl including includes also see class group division
section manufacture manufacturing production producing processing activities activity products product
making made whether not only mainly specialised various similar like kinds kind type types""".split())


@dataclass(frozen=True)
class CodeCard:
    """Everything a prompt says about one code, gathered once per code."""

    code: Code
    parent_title: str
    lines: list[str]                  # title, then each includes / also-includes item
    excluded: list[tuple[str, str]]   # (item text, where it goes) from the code's own excludes
    siblings: list[tuple[str, str]]   # (code, title)
    incoming: list[tuple[str, str, str]]  # (text, source code, source title): excluded elsewhere, belongs here
    keywords: list[str]

    @property
    def is_residual(self) -> bool:
        return bool(_NEC.search(self.code.title))


def note_items(text: str) -> list[str]:
    """Bulleted items of an includes text; '. sub-item' lines are joined to their parent item."""
    items: list[str] = []
    parent = ""
    for raw in text.splitlines():
        if not raw.strip() or _HEADER.match(raw):
            continue
        if _SUBITEM.match(raw):
            sub = _SUBITEM.sub("", raw).strip()
            head = parent.rstrip(": ")
            if items and items[-1] == parent:
                items.pop()
            items.append(f"{head}: {sub}" if head else sub)
        elif _ITEM.match(raw) or not items:
            parent = _ITEM.sub("", raw).strip()
            items.append(parent)
        else:
            items[-1] = f"{items[-1]} {raw.strip()}"
            parent = items[-1]
    return [re.sub(r"\s+", " ", i).strip(" ;") for i in items if i.strip(" ;")]


def keywords_of(texts: list[str], *, limit: int = 24) -> list[str]:
    """Content words of the notes in order of first appearance: the terms coders see in answers."""
    seen: list[str] = []
    for text in texts:
        for word in re.findall(r"[^\W\d_][\w'-]*", text.lower()):
            if len(word) > 2 and word not in _STOP and word not in seen:
                seen.append(word)
    return seen[:limit]


def code_card(project: Project, code: str) -> CodeCard:
    item = get_code(project, code)
    path = ancestors(project, code)
    lines = [item.title] + note_items(item.includes) + note_items(item.also_includes)
    lines = list(dict.fromkeys(lines))
    excluded = []
    for raw in split_items(item.excludes):
        parsed = parse_item(raw)
        if parsed is not None:
            excluded.append((parsed.text, parsed.references.strip(" .")))
    incoming = []
    for link in links_to(project, code):
        try:
            source_title = get_code(project, link.code).title
        except Exception:  # a link to a code outside the project's tree cannot happen after import; be safe
            source_title = ""
        incoming.append((link.text, link.code, source_title))
    return CodeCard(code=item, parent_title=path[-1].title if path else "", lines=lines, excluded=excluded,
                    siblings=[(s.code, s.title) for s in siblings(project, code)], incoming=incoming,
                    keywords=keywords_of(lines))
