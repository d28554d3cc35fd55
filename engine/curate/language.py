"""Cheap, offline checks that a short text is in the project's script and language (no model needed)."""

from __future__ import annotations

import unicodedata
from collections import Counter

# Function words that are rare in the other listed languages. Short coded phrases often carry none, so
# a text is called foreign only on positive evidence (see `foreign_language`).
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and of for in with to on from by at or my we our is are a an".split()),
    "fr": frozenset("le la les des du de et pour avec dans sur au aux une un est sont".split()),
    "de": frozenset("der die das und von für mit im ein eine zu auf den dem des ist sind".split()),
    "es": frozenset("el la los las y de del para con en un una por es son".split()),
    "it": frozenset("il lo la gli le e di del della per con un una è sono".split()),
    "nl": frozenset("de het een en van voor met in op is zijn".split()),
    "pt": frozenset("o a os as e de do da dos das para com em um uma".split()),
}

LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
                  "nl": "Dutch", "pt": "Portuguese"}

_SCRIPTS_OF = {
    "ru": {"CYRILLIC"}, "bg": {"CYRILLIC"}, "uk": {"CYRILLIC"}, "sr": {"CYRILLIC", "LATIN"}, "mk": {"CYRILLIC"},
    "el": {"GREEK"}, "ar": {"ARABIC"}, "fa": {"ARABIC"}, "he": {"HEBREW"}, "ko": {"HANGUL"},
    "ja": {"CJK", "HIRAGANA", "KATAKANA"}, "zh": {"CJK"},
}


def script_of(ch: str) -> str:
    """The script of a letter, from its Unicode name: LATIN, CYRILLIC, GREEK, CJK..."""
    try:
        return unicodedata.name(ch).split()[0]
    except ValueError:
        return "UNKNOWN"


def foreign_script(text: str, language: str, *, max_share: float = 0.3) -> str | None:
    """The dominant foreign script's name when more than `max_share` of the letters use one."""
    expected = _SCRIPTS_OF.get(language.split("-")[0].lower(), {"LATIN"})
    scripts = Counter(script_of(ch) for ch in text if ch.isalpha())
    total = sum(scripts.values())
    foreign = {s: n for s, n in scripts.items() if s not in expected}
    if not total or sum(foreign.values()) / total <= max_share:
        return None
    return max(foreign, key=foreign.__getitem__).title()


def foreign_language(words: list[str], language: str) -> str | None:
    """Another language's name when the text has >= 2 of its function words and none of the project's."""
    own = STOPWORDS.get(language.split("-")[0].lower())
    if own is None:
        return None
    if any(w in own for w in words):
        return None
    best, best_hits = None, 1
    for other, stopwords in STOPWORDS.items():
        if other == language:
            continue
        hits = sum(w in stopwords for w in words)
        if hits > best_hits:
            best, best_hits = other, hits
    return LANGUAGE_NAMES.get(best, best) if best else None
