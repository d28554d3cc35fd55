"""Versioned prompt texts. The code card comes first and is shared by every request for a code (KV reuse);
the task, grounded in one note line, excluded item, example set or key term, comes last.

Change a strategy's wording and you must bump its version: samples record version and prompt hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.llm.backends import Prompt
from engine.generate.cards import CodeCard

SYSTEM_VERSION = "sys-2"
STRATEGY_VERSIONS = {
    "notes": "notes-2",
    "grid": "grid-2",
    "few-shot": "few-shot-2",
    "nec": "nec-2",
    "contrastive": "contrastive-2",
    "keywords": "keywords-2",
    "progen": "progen-1",
    "retrieved": "retrieved-1",
}

SYSTEM = (
    "You write the short texts that people type into forms to say what a business or a job does: "
    "answers to business surveys, entries in a business register or a coding index, job titles. "
    "They are short noun phrases of 2 to 8 words, for example \"Widget making (manufacture)\", "
    "\"Repair of garden tools\", \"gravel pit\", \"builders merchant\". "
    "They never mention a classification code. Reply with a JSON list of strings and nothing else."
)

DEFAULT_GRID: dict[str, list[str]] = {
    "writer": ["a business owner answering a survey", "a register clerk writing an index entry",
               "an employee describing their workplace", "a job advertisement headline"],
    "length": ["2 to 4 words", "4 to 8 words"],
    "register": ["plain everyday words", "the trade's own technical terms"],
    "noise": ["no typos", "some abbreviations and one small typo"],
}


@dataclass(frozen=True)
class Task:
    """One request's strategy-specific part, and what it was grounded in (recorded as the condition)."""

    strategy: str
    text: str
    condition: dict


def card_text(card: CodeCard, *, classification: str, max_siblings: int = 12) -> str:
    """The shared part of every prompt for this code."""
    code = card.code
    parts = [f"Classification: {classification}", f"Code {code.code}: {code.title}"]
    if card.parent_title:
        parts.append(f"(part of: {card.parent_title})")
    if len(card.lines) > 1:
        parts.append("This code includes:")
        parts.extend(f"- {line}" for line in card.lines[1:])
    if card.excluded:
        parts.append("Not this code (these belong to other codes):")
        parts.extend(f"- NOT {text} (see {where})" for text, where in card.excluded)
    if card.siblings:
        parts.append("Neighbouring codes, also not this code:")
        parts.extend(f"- NOT {c} {title}" for c, title in card.siblings[:max_siblings])
    return "\n".join(parts)


def build_prompt(card: CodeCard, task: Task, *, classification: str, items: int, kind: str) -> Prompt:
    """The full prompt. Completion (base) models get a cue after which the JSON list starts."""
    cue = f"Answer (JSON list of {items} short texts): " if kind == "completion" else ""
    return Prompt(system=SYSTEM, shared=card_text(card, classification=classification), task=task.text, cue=cue)


def _ask(items: int, language: str, length: str = "2 to 8 words") -> str:
    return (f"Write {items} different texts of {length} each, in {language}, that would be coded to this "
            "code. Vary the wording: product or service names, process names, trade terms, premises, "
            "job titles. Each must fit this code and none of the codes marked NOT.")


def notes_task(card: CodeCard, index: int, *, items: int, language: str) -> Task:
    line = card.lines[index % len(card.lines)]
    text = f"Write about this line of the notes only: \"{line}\".\n" + _ask(items, language)
    return Task("notes", text, {"line": line})


def grid_task(card: CodeCard, index: int, cell: dict[str, str], *, items: int, language: str) -> Task:
    line = card.lines[index % len(card.lines)]
    noise = cell.get("noise", "no typos")
    text = (f"Write about this line of the notes only: \"{line}\".\n"
            f"Written by {cell.get('writer', 'a survey respondent')}, in {cell.get('register', 'plain words')}, "
            f"with {noise}.\n" + _ask(items, language, cell.get("length", "2 to 8 words")))
    return Task("grid", text, {"line": line, **cell})


def few_shot_task(card: CodeCard, examples: list[str], *, items: int, language: str) -> Task:
    shown = "\n".join(f"- {e}" for e in examples)
    text = (f"Real texts coded to this code:\n{shown}\n"
            f"Write {items} new texts in the same style about other activities of this code, in {language}. "
            "Do not repeat the examples.")
    return Task("few-shot", text, {"examples": examples})


def nec_task(card: CodeCard, index: int, *, items: int, language: str) -> Task:
    line = card.lines[index % len(card.lines)]
    text = ("This is a residual code: it takes only what none of the neighbouring codes takes.\n"
            f"Write about this line of the notes only: \"{line}\".\n" + _ask(items, language))
    return Task("nec", text, {"line": line})


def contrastive_task(card: CodeCard, index: int, *, items: int, language: str) -> Task:
    text_, source, source_title = card.incoming[index % len(card.incoming)]
    text = (f"Code {source} ({source_title}) excludes \"{text_}\": that activity belongs to THIS code.\n"
            f"Write {items} different texts of 2 to 8 words, in {language}, about \"{text_}\" exactly, as the "
            "people doing it would write them. They must not fit code " + source + ".")
    return Task("contrastive", text, {"excluded_from": source, "item": text_})


def keywords_task(card: CodeCard, index: int, *, items: int, language: str) -> Task:
    word = card.keywords[index % len(card.keywords)]
    text = (f"Each text must contain the word \"{word}\" (or its plural or a translation into {language}).\n"
            + _ask(items, language))
    return Task("keywords", text, {"keyword": word})


def progen_task(card: CodeCard, examples: list[str], *, items: int, language: str) -> Task:
    """ProGen's second round: round-1 samples a coder trained on the notes found most typical of this code."""
    shown = "\n".join(f"- {e}" for e in examples)
    text = (f"Good texts for this code, written earlier:\n{shown}\n"
            f"Write {items} new texts like these, in {language}, about other activities of this code. "
            "Do not repeat them; each must fit this code and none of the codes marked NOT.")
    return Task("progen", text, {"examples": examples})


def retrieved_task(card: CodeCard, examples: list[str], *, items: int, language: str) -> Task:
    """SynthesizRR: real texts near the code's notes, shown for their style only, never as labelled examples."""
    shown = "\n".join(f"- {e}" for e in examples)
    text = (f"Texts people really typed into forms (their codes are unknown; they may belong to any code):\n"
            f"{shown}\nWrite {items} texts in the same style and wording habits (length, abbreviations, "
            f"register), in {language}, about activities of THIS code. Do not copy them.")
    return Task("retrieved", text, {"style_examples": examples})
