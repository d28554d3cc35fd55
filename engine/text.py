"""Text normalisation shared by every stage, so the same text always gets the same key."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022.]+|\d+[.)]|[a-z][.)])\s+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


def clean_text(text: str) -> str:
    """Tidy a text for storage: unicode NFC, straight quotes, no list marker, single spaces."""
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    text = _LIST_MARKER.sub("", text)
    return _SPACES.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits of any script; '_' splits nothing worth keeping): what the
    lexical coder and the title heads read."""
    return [w for w in _WORD.findall(text.lower()) if w != "_"]


def normalise_key(text: str) -> str:
    """The comparison key of a text: cleaned, case-folded, outer quotes and punctuation stripped."""
    key = clean_text(text).casefold()
    return key.strip(" \"'.,;:!?")


def text_hash(text: str) -> str:
    """A stable hash of the normalised text."""
    return hashlib.sha1(normalise_key(text).encode("utf-8")).hexdigest()


def file_sha256(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
