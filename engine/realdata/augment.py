"""Classical augmentation of real-train texts: keyboard typos, word dropout, swaps, abbreviations, case changes.

Only rows of the train split are read, so a test text can never leak into training through a variant.
Every variant is stored in `augmented_texts` with its source row, the operations applied and the seed;
the same seed and options give the same variants.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

from engine.errors import StatcoderError
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.store.project import Project

OPERATIONS = ("typo", "dropout", "swap", "abbreviation", "case")

_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _keyboard_neighbours() -> dict[str, str]:
    where = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    out: dict[str, str] = {}
    for ch, (r, c) in where.items():
        near = [other for other, (r2, c2) in where.items()
                if other != ch and abs(r - r2) <= 1 and abs((c + 0.5 * r) - (c2 + 0.5 * r2)) <= 1]
        out[ch] = "".join(sorted(near))
    return out


NEIGHBOURS = _keyboard_neighbours()

# Abbreviations coders and respondents write in English business descriptions.
ABBREVIATIONS_EN: dict[str, str] = {
    "manufacture": "mfr", "manufacturing": "mfg", "manufacturer": "mfr", "and": "&", "company": "co",
    "limited": "ltd", "services": "svcs", "service": "svc", "wholesale": "w/sale", "retail": "rtl",
    "products": "prods", "equipment": "equip", "department": "dept", "association": "assoc",
    "international": "intl", "management": "mgmt", "maintenance": "maint", "construction": "constr",
    "distribution": "distrib", "engineering": "eng", "agricultural": "agric", "government": "govt",
    "building": "bldg", "with": "w/", "without": "w/o", "machinery": "mach", "machine": "mach",
    "electrical": "elec", "electronic": "electr", "industrial": "ind", "accessories": "accs",
    "materials": "matls", "insurance": "ins", "repair": "rep", "technical": "tech", "technology": "tech",
    "production": "prodn", "transport": "trans", "approximately": "approx", "miscellaneous": "misc",
}


@dataclass
class AugmentOptions:
    seed: int = 0
    per_text: int = 2                     # variants wanted per source text
    operations: Sequence[str] = OPERATIONS
    ops_per_variant: int = 1              # how many operations each variant gets (distinct, random order)
    typo_words: int = 1                   # words a typo operation changes
    dropout_rate: float = 0.2             # share of words dropped (at least one; texts keep >= 2 words)
    abbreviations: dict[str, str] = field(default_factory=lambda: dict(ABBREVIATIONS_EN))
    codes: Sequence[str] | None = None    # only the real-train texts of these codes

    def describe(self) -> dict:
        unknown = set(self.operations) - set(OPERATIONS)
        if unknown or not self.operations:
            raise StatcoderError(f"unknown augmentation operation(s) {', '.join(sorted(unknown)) or '(none given)'};"
                                 f" choose from {', '.join(OPERATIONS)}")
        if self.per_text < 1 or self.ops_per_variant < 1:
            raise StatcoderError("per_text and ops_per_variant must be at least 1")
        data = asdict(self)
        data["abbreviations"] = len(self.abbreviations)
        return data


@dataclass
class AugmentResult:
    source_texts: int
    created: int
    skipped: int                          # no operation applied, or equal to the source or a sibling variant
    existing: int                         # already stored by an earlier run with the same settings
    by_operation: dict[str, int]


_WORD = re.compile(r"\S+")
_AFFIXED = re.compile(r"^(\W*)(\w+)(\W*)$")


def typo(words: list[str], rng: random.Random, n: int = 1) -> list[str] | None:
    """Replace one letter in `n` words of 3+ letters with a neighbouring key on a QWERTY keyboard."""
    candidates = [i for i, w in enumerate(words) if sum(ch.isalpha() for ch in w) >= 3]
    if not candidates:
        return None
    out = list(words)
    for i in rng.sample(candidates, min(n, len(candidates))):
        word = out[i]
        positions = [j for j, ch in enumerate(word) if ch.lower() in NEIGHBOURS]
        if not positions:
            continue
        j = rng.choice(positions)
        new = rng.choice(NEIGHBOURS[word[j].lower()])
        out[i] = word[:j] + (new.upper() if word[j].isupper() else new) + word[j + 1:]
    return out


def dropout(words: list[str], rng: random.Random, rate: float = 0.2) -> list[str] | None:
    if len(words) < 3:
        return None
    n = max(1, min(len(words) - 2, round(rate * len(words))))
    drop = set(rng.sample(range(len(words)), n))
    return [w for i, w in enumerate(words) if i not in drop]


def swap(words: list[str], rng: random.Random) -> list[str] | None:
    if len(words) < 2:
        return None
    i = rng.randrange(len(words) - 1)
    out = list(words)
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


def abbreviate(words: list[str], rng: random.Random, table: dict[str, str]) -> list[str] | None:
    """Shorten one word found in `table`, keeping punctuation around it: '(manufacture)' -> '(mfr)'."""
    parts = [_AFFIXED.match(w) for w in words]
    found = [i for i, m in enumerate(parts) if m and m.group(2).casefold() in table]
    if not found:
        return None
    i = rng.choice(found)
    lead, core, tail = parts[i].groups()  # type: ignore[union-attr]
    return words[:i] + [lead + table[core.casefold()] + tail] + words[i + 1:]


def change_case(words: list[str], rng: random.Random) -> list[str] | None:
    text = " ".join(words)
    choices = [t for t in (text.lower(), text.upper(), text.title(), text[:1].upper() + text[1:].lower())
               if t != text]
    return rng.choice(choices).split(" ") if choices else None


def augment_text(text: str, rng: random.Random, options: AugmentOptions) -> tuple[str, list[str]] | None:
    """One variant of `text` and the operations that made it, or None when no operation applies."""
    words = _WORD.findall(text)
    ops = list(options.operations)
    rng.shuffle(ops)
    applied: list[str] = []
    for op in ops:
        if len(applied) >= options.ops_per_variant:
            break
        if op == "typo":
            new = typo(words, rng, options.typo_words)
        elif op == "dropout":
            new = dropout(words, rng, options.dropout_rate)
        elif op == "swap":
            new = swap(words, rng)
        elif op == "abbreviation":
            new = abbreviate(words, rng, options.abbreviations)
        else:
            new = change_case(words, rng)
        if new is not None and new != words:
            words = new
            applied.append(op)
    if not applied:
        return None
    return " ".join(words), applied


def augment_real_train(project: Project, options: AugmentOptions | None = None, *,
                       progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> AugmentResult:
    """Make `per_text` variants of every real-train text; re-running with the same seed adds nothing new."""
    options = options or AugmentOptions()
    options.describe()
    sql = "SELECT id, text, code FROM real_texts WHERE split = 'train'"
    args: list = []
    if options.codes is not None:
        sql += f" AND code IN ({','.join('?' * len(options.codes)) or 'NULL'})"
        args = list(options.codes)
    rows = project.conn.execute(sql + " ORDER BY id", args).fetchall()
    known: dict[int, set[str]] = {}
    for real_id, text in project.conn.execute("SELECT real_id, text FROM augmented_texts"):
        known.setdefault(real_id, set()).add(text)
    meter = ProgressMeter(len(rows), progress)
    new_rows: list[tuple] = []
    skipped = existing = 0
    by_op: dict[str, int] = {}
    for done, (real_id, text, code) in enumerate(rows):
        if cancel and done % 200 == 0:
            cancel.check()
        stored = known.setdefault(real_id, set())
        made_now: set[str] = {text}
        for i in range(options.per_text):
            # One generator per (seed, row, variant): a row's variants do not depend on which other rows exist.
            made = augment_text(text, random.Random(f"{options.seed}:{real_id}:{i}"), options)
            if made is None or made[0] in made_now:
                skipped += 1
                continue
            variant, ops = made
            made_now.add(variant)
            if variant in stored:
                existing += 1
                continue
            stored.add(variant)
            new_rows.append((real_id, variant, code, json.dumps(ops), options.seed))
            for op in ops:
                by_op[op] = by_op.get(op, 0) + 1
        meter.update(done + 1, "augmenting real-train texts")
    with project.transaction() as conn:
        conn.executemany("INSERT INTO augmented_texts (real_id, text, code, ops, seed) VALUES (?, ?, ?, ?, ?)",
                         new_rows)
    return AugmentResult(len(rows), len(new_rows), skipped, existing, dict(sorted(by_op.items())))


def augmented_pairs(project: Project, *, codes: Sequence[str] | None = None,
                    seed: int | None = None) -> list[tuple[str, str]]:
    """(text, code) of stored variants, only of rows that are still in the train split."""
    sql = ("SELECT a.text, a.code FROM augmented_texts a JOIN real_texts r ON r.id = a.real_id"
           " WHERE r.split = 'train'")
    args: list = []
    if codes is not None:
        sql += f" AND a.code IN ({','.join('?' * len(codes)) or 'NULL'})"
        args += list(codes)
    if seed is not None:
        sql += " AND a.seed = ?"
        args.append(seed)
    return [(t, c) for t, c in project.conn.execute(sql + " ORDER BY a.id", args)]
