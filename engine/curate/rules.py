"""Curation rules over in-memory samples: duplicates, label conflicts, note copies, excludes conflicts, garbage.

Every rule is a pure function from samples (and reference texts) to `Hit`s, so it can be tested on crafted
data without a project file. Storing hits and deciding statuses is `engine.curate.store`'s job.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from rapidfuzz import fuzz, process

from engine.text import clean_text, normalise_key
from engine.curate.language import foreign_language, foreign_script

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
_NOTE_HEADER = re.compile(r"^\s*this\s+\w+\s+(?:also\s+)?(?:includes|excludes)\s*:?\s*$", re.IGNORECASE)
_CODE_LIKE = re.compile(r"\b\d{2}(?:\.\d{1,2}){0,2}\b|\b\d{4,6}\b")

# Words that say nothing about which activity a text describes; excludes lines share them with everything.
GENERIC_WORDS = frozenset("""
a an the of and or for in on to by with from at as its their his her this that these those such other n e c nec
etc incl including e g i ie eg see also all any various manufacture manufacturing manufactured production
producing produce activity activities service services operation operations making make made
""".split())

ECHO = re.compile(
    r"^(?:here\s+(?:are|is)\b|sure[,.!]|certainly[,.!]|of course[,.!]|okay[,.!]|as an ai\b|i cannot\b|i can't\b"
    r"|examples?\s*(?:\d+\s*)?:|output\s*:|answer\s*:|text\s*:|phrase\s*:|description\s*:|label\s*:|code\s*:"
    r"|note\s*:)"
    r"|__label__|<\|?(?:im_start|im_end|start_of_turn|end_of_turn|eot_id|endoftext)\|?>"
    r"|\b(?:this|the)\s+(?:class|code|category|subclass|division|group|section)\s+(?:also\s+)?(?:includes|excludes|covers)\b"
    r"|\bexplanatory\s+notes?\b|\bsynthetic\b"
    r"|\b(?:generate|write|list)\b.{0,40}\b(?:examples?|phrases?|descriptions?|texts?)\b",
    re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """A sample as the rules see it. `key` is the comparison key (see `compare_key`)."""

    id: int
    code: str
    text: str
    key: str


@dataclass(frozen=True)
class Hit:
    """One rule firing on one sample."""

    sample_id: int
    rule: str
    reason: str
    suggested_code: str | None = None


@dataclass(frozen=True)
class GarbageLimits:
    min_chars: int = 3           # letters and digits, not counting spaces or punctuation
    max_chars: int = 300
    max_words: int = 40
    max_run: int = 3             # the same word this many times in a row is garbage
    min_unique_share: float = 0.5  # of words, for texts of 6 words or more
    foreign_script_share: float = 0.3
    language: str = "en"


def compare_key(text: str) -> str:
    """The key duplicates are judged on: cleaned, case-folded, punctuation to spaces."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", normalise_key(text))).strip()


def make_sample(id: int, code: str, text: str) -> Sample:
    return Sample(id, code, text, compare_key(text))


def stem(word: str) -> str:
    """Light plural/-ing folding so 'bakeries' meets 'bakery' and 'products' meets 'product'."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + repl
    return word


def content_words(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text.casefold()) if w not in GENERIC_WORDS and not w.isdigit()}


def note_lines(*fields: str) -> list[str]:
    """The separate lines of a code's title and notes, without headers, list markers or trailing colons."""
    lines: list[str] = []
    for field in fields:
        for raw in field.splitlines():
            if not raw.strip() or _NOTE_HEADER.match(raw):
                continue
            line = clean_text(raw).rstrip(":").strip()
            if line:
                lines.append(line)
    return lines


# duplicates ------------------------------------------------------------------------------------

def duplicates(samples: Sequence[Sample], *, threshold: float) -> list[Hit]:
    """Exact and near-duplicates within each code: a sample is flagged when an earlier one is (nearly) the same.

    Near means rapidfuzz `fuzz.ratio` of the comparison keys >= threshold (0-100) and as many content words;
    a character ratio keeps "bakery" and "bakery shop" apart (70.6) while "bakery shop" and "bakery shops"
    (95.7) are one text.
    """
    hits: list[Hit] = []
    by_code: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.id):
        if sample.key:
            by_code[sample.code].append(sample)
    for group in by_code.values():
        seen: list[Sample] = []              # one per distinct key, in id order
        first_by_key: dict[str, Sample] = {}
        for sample in group:
            original = first_by_key.get(sample.key)
            if original is not None:
                hits.append(Hit(sample.id, "duplicate", f"same text as sample {original.id}"))
                continue
            words = len(content_words(sample.text))
            # Spelling-level variants only: a word more or less ("dry bakery products" vs "bakery products")
            # changes what a text says, however similar its characters.
            matches = [(other, score) for _, score, i in process.extract(
                sample.key, [k.key for k in seen], scorer=fuzz.ratio, score_cutoff=threshold, limit=None)
                       if len(content_words((other := seen[i]).text)) == words]
            if matches:
                other, score = min(matches, key=lambda m: (-m[1], m[0].id))
                hits.append(Hit(sample.id, "near_duplicate",
                                f"{score:.0f}% similar to sample {other.id} ({other.text!r})"))
            seen.append(sample)
            first_by_key[sample.key] = sample
    return hits


def label_conflicts(samples: Sequence[Sample], *, real_train: Iterable[tuple[str, str]] = ()) -> list[Hit]:
    """The same text under two codes: every side is flagged, with another code it also carries suggested.

    Real-train texts count as a side too (they are never flagged themselves: they are not samples).
    """
    codes_by_key: dict[str, set[str]] = defaultdict(set)
    real_codes: dict[str, set[str]] = defaultdict(set)
    for sample in samples:
        if sample.key:
            codes_by_key[sample.key].add(sample.code)
    for text, code in real_train:
        key = compare_key(text)
        if key in codes_by_key:
            real_codes[key].add(code)
    hits: list[Hit] = []
    for sample in samples:
        if not sample.key:
            continue
        others = sorted((codes_by_key[sample.key] | real_codes[sample.key]) - {sample.code})
        if others:
            where = [f"{c} (real-train)" if c in real_codes[sample.key] else c for c in others]
            hits.append(Hit(sample.id, "label_conflict", "same text also labelled " + ", ".join(where), others[0]))
    return hits


# the notes -------------------------------------------------------------------------------------

def note_copies(samples: Sequence[Sample], lines_by_code: dict[str, list[str]], *, threshold: float) -> list[Hit]:
    """Samples that are (nearly) a verbatim line of their own code's title or notes: kept, but marked.

    A sample that is exactly a note line of *another* code (and none of its own) is a `note_conflict`,
    with that code suggested.
    """
    keys_by_code = {code: [compare_key(line) for line in lines] for code, lines in lines_by_code.items()}
    codes_by_line: dict[str, set[str]] = defaultdict(set)
    for code, keys in keys_by_code.items():
        for key in keys:
            codes_by_line[key].add(code)
    hits: list[Hit] = []
    for sample in samples:
        if not sample.key:
            continue
        own = keys_by_code.get(sample.code, [])
        words = content_words(sample.text)
        for line, key in zip(lines_by_code.get(sample.code, []), own):
            # The same content words too: "dry bakery products" is no copy of "bakery products".
            score = fuzz.ratio(sample.key, key)
            if score >= threshold and content_words(line) == words:
                hits.append(Hit(sample.id, "note_copy", f"{score:.0f}% the same as the note line {line!r}"))
                break
        else:
            others = sorted(codes_by_line.get(sample.key, set()) - {sample.code})
            if others:
                hits.append(Hit(sample.id, "note_conflict", f"is a note line of {', '.join(others)}", others[0]))
    return hits


def excludes_conflicts(samples: Sequence[Sample], links_by_code: dict[str, list[tuple[str, str]]], *,
                       min_recall: float = 0.75, min_precision: float = 0.5) -> list[Hit]:
    """Samples that describe an activity their own code excludes; the code it is excluded to is suggested.

    Matching is on content words (generic words such as 'manufacture of' dropped, plurals folded): the sample
    must carry at least `min_recall` of the excludes line's words, and those must be at least `min_precision`
    of its own words. So "dry bakery products" matches "manufacture of dry bakery products, see 10.72", while
    "bakery products" (no "dry") does not.
    """
    hits: list[Hit] = []
    prepared = {code: [(content_words(text), text, target) for target, text in links]
                for code, links in links_by_code.items()}
    for sample in samples:
        words = content_words(sample.text)
        if not words:
            continue
        best: tuple[float, str, str] | None = None
        for link_words, text, target in prepared.get(sample.code, []):
            if not link_words:
                continue
            common = len(words & link_words)
            recall, precision = common / len(link_words), common / len(words)
            if recall >= min_recall and precision >= min_precision:
                score = recall + precision
                if best is None or score > best[0]:
                    best = (score, text, target)
        if best is not None:
            hits.append(Hit(sample.id, "excludes_conflict",
                            f"{sample.code} excludes {best[1]!r} (see {best[2]})", best[2]))
    return hits


# garbage ---------------------------------------------------------------------------------------

def garbage(samples: Sequence[Sample], *, code_titles: dict[str, str] | None = None,
            limits: GarbageLimits = GarbageLimits()) -> list[Hit]:
    """Empty, too short or long, prompt echo, repeated words, another language or script. One hit each."""
    hits: list[Hit] = []
    for sample in samples:
        found = garbage_reason(sample.text, code=sample.code, limits=limits)
        if found:
            hits.append(Hit(sample.id, found[0], found[1]))
    return hits


def garbage_reason(text: str, *, code: str | None = None,
                   limits: GarbageLimits = GarbageLimits()) -> tuple[str, str] | None:
    """(rule, reason) for the first garbage rule a text breaks, or None."""
    cleaned = clean_text(text)
    letters = sum(ch.isalnum() for ch in cleaned)
    if not any(ch.isalpha() for ch in cleaned):
        return ("empty", "no words" if cleaned else "empty text")
    if letters < limits.min_chars:
        return ("too_short", f"{letters} letters (minimum {limits.min_chars})")
    words = _WORD.findall(cleaned.casefold())
    if len(cleaned) > limits.max_chars or len(words) > limits.max_words:
        return ("too_long", f"{len(words)} words, {len(cleaned)} characters "
                            f"(maximum {limits.max_words} words, {limits.max_chars} characters)")
    if ECHO.search(cleaned):
        return ("prompt_echo", f"prompt or chat wording: {ECHO.search(cleaned).group(0)!r}")
    if code and any(m.group(0) == code for m in _CODE_LIKE.finditer(cleaned)):
        return ("prompt_echo", f"contains its own code {code}")
    run = _longest_run(words)
    if run[1] >= limits.max_run:
        return ("repeated_tokens", f"{run[0]!r} {run[1]} times in a row")
    if len(words) >= 6 and len(set(words)) / len(words) < limits.min_unique_share:
        return ("repeated_tokens", f"only {len(set(words))} different words out of {len(words)}")
    bigrams = list(zip(words, words[1:]))
    if bigrams:
        top = max(set(bigrams), key=bigrams.count)
        if bigrams.count(top) >= limits.max_run:
            return ("repeated_tokens", f"{' '.join(top)!r} {bigrams.count(top)} times")
    script = foreign_script(cleaned, limits.language, max_share=limits.foreign_script_share)
    if script:
        return ("language", f"written in {script} script, not the project's")
    language = foreign_language(words, limits.language)
    if language:
        return ("language", f"looks like {language}, not the project's language ({limits.language})")
    return None


def _longest_run(words: list[str]) -> tuple[str, int]:
    best, current, length = ("", 0), None, 0
    for word in words:
        length = length + 1 if word == current else 1
        current = word
        if length > best[1]:
            best = (word, length)
    return best
