"""Constrained output: a GBNF grammar and a JSON schema for a list of short phrases, and a tolerant parser."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.text import clean_text, normalise_key

_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.){2,200})"')


def phrase_list_grammar(*, items: int, min_words: int = 1, max_words: int = 8, max_word_chars: int = 24) -> str:
    """GBNF for a JSON array of exactly `items` strings of `min_words`..`max_words` words each.

    Bounding the words in the grammar keeps even a small base model from rambling: it cannot emit
    a long sentence, only a short phrase, and the list always closes so it always parses.
    """
    if items < 1 or not 1 <= min_words <= max_words:
        raise ValueError("items >= 1 and 1 <= min_words <= max_words are required")
    more = f"{min_words - 1},{max_words - 1}"
    rest = f' (sep item){{{items - 1}}}' if items > 1 else ""
    return "\n".join([
        f'root ::= "[" item{rest} "]"',
        'sep ::= "," " "?',
        f'item ::= "\\"" word (" " word){{{more}}} "\\""',
        f'word ::= wchar{{1,{max_word_chars}}}',
        # No quotes or control characters (JSON), and none of the symbols of file names, markup and code,
        # which small models drift into.
        r'wchar ::= [^"\\ \x00-\x1f\[\]{}/_@#$%^*=+<>|~`:;]',
    ]) + "\n"


def phrase_list_schema(*, items: int, max_chars: int = 80) -> dict:
    """The same list as a JSON schema, for servers that take schemas but not GBNF (vLLM)."""
    return {"type": "array", "minItems": items, "maxItems": items,
            "items": {"type": "string", "minLength": 2, "maxLength": max_chars}}


@dataclass
class ParsedPhrases:
    phrases: list[str] = field(default_factory=list)
    ok: bool = True            # the whole output was a valid JSON list of strings
    salvaged: bool = False     # some phrases were recovered from malformed output
    error: str = ""


def parse_phrase_list(text: str, *, max_words: int = 12) -> ParsedPhrases:
    """Phrases from a model's output: a JSON list, else any quoted strings in it. Never raises."""
    raw: list[str] = []
    result = ParsedPhrases()
    stripped = text.strip()
    try:
        value = json.loads(stripped)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            raw = value
        else:
            result.ok, result.error = False, f"JSON but not a list of strings: {stripped[:80]!r}"
    except ValueError as exc:
        result.ok, result.error = False, f"not JSON ({exc.msg}): {stripped[:80]!r}"
    if not result.ok:
        raw = [m.group(1) for m in _QUOTED.finditer(stripped)]
        result.salvaged = bool(raw)
    seen: set[str] = set()
    for item in raw:
        phrase = clean_text(item).strip(" ,;:-\"'")
        key = normalise_key(phrase)
        if len(key) < 2 or key in seen or len(phrase.split()) > max_words or not re.search(r"\w", phrase):
            continue
        seen.add(key)
        result.phrases.append(phrase)
    return result
