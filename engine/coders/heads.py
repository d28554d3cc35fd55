"""Title heads: the activity a text names ('wholesale', 'retail', 'commission agent'), matched to the codes
whose titles lead with it.

Classifications of economic activities cross an activity type with a product: NACE has 'Manufacture of
plastics in primary forms' (20.16), 'Wholesale of chemical products' (46.75) and 'Agents involved in the sale
of fuels, ores, metals and industrial chemicals' (46.12). A sentence-embedding coder hears the product and
misses the activity: on all of NACE with zero real text, the ensemble of four puts 'Polyamides in primary
forms (wholesale)' in 20.16, gets 47 % of the texts marked '(wholesale)' right and 13 % of those marked
'(commission agent)' (the development half,
bench/results/ensemble-zero-real-lexical-grams4-redirected-coverage-heads-dev-nace-full.md).

The classification itself says which words name an activity: the first word of a title, on every level of a
code's path ('C Manufacturing', '46 Wholesale trade', '46.1 Wholesale on a fee or contract basis', '46.12
Agents involved in ...'). A head counts when at least MIN_CODES codes share it. A text that holds one of
these heads (words matched by their first PREFIX letters: 'wholesaler' meets 'Wholesale', 'agent' meets
'Agents') adds log(1 + beta x the number of its heads on the code's path) to every code's log score: codes
of the activity it names move up, and the coder's own ranking still chooses among them.

It is only right where titles lead with the activity. NACE's do, so it is on for NACE (beta 20 on the
development half: the zero-real ensemble of four 60.7 -> 62.0 % top-1). NAICS titles lead with the product
('Soybean Farming', 'Chemical and Allied Products Merchant Wholesalers'), and the same term costs 0.5 points
there (bench/results/title-heads-dev-naics-full.md), so it is off: a project turns it on through its classification's format (ACTIVITY_TITLE_FORMATS) or
its 'classification' setting's 'activity_titles'.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

import numpy as np

from engine.errors import ModelError
from engine.store.project import Project
from engine.text import words

PREFIX = 4          # a word is its first four letters: 'wholesaler' ~ 'wholesale', 'agent' ~ 'agents'
MIN_CODES = 5       # a head shared by fewer codes names a product, not an activity
# The weight of a head match when no real text chooses it: chosen on the development half of all of NACE,
# zero real, the ensemble of four (beta 1, 3, 10, 20, 50: 61.3, 61.7, 61.9, 62.0, 62.0 % top-1).
ZERO_REAL_BETA = 20.0
BETA_GRID = (0.0, 3.0, 10.0, 20.0, 50.0)
# classification formats whose titles lead with the activity ('Manufacture of ...', 'Wholesale of ...')
ACTIVITY_TITLE_FORMATS = frozenset({"nace-ramon"})


def activity_titles(project: Project) -> bool:
    """Whether the project's classification titles lead with the activity: its 'classification' setting's
    'activity_titles' when given, else whether its format is one that does."""
    setting = project.get_setting("classification", {}) or {}
    if "activity_titles" in setting:
        return bool(setting["activity_titles"])
    return setting.get("format") in ACTIVITY_TITLE_FORMATS


def head_of(title: str) -> str:
    found = words(title)
    return found[0][:PREFIX] if found else ""


def code_heads(project: Project, codes: Sequence[str], min_codes: int = MIN_CODES) -> dict[str, list[str]]:
    """Each code's heads: the first words of the titles on its path (itself, its parent, ... its section)
    that at least `min_codes` of `codes` share. Codes not in the classification get none."""
    rows = {code: (parent, title) for code, parent, title in
            project.conn.execute("SELECT code, parent, title FROM codes")}
    paths: dict[str, set[str]] = {}
    for code in codes:
        found, node, seen = set(), code, set()
        while node is not None and node in rows and node not in seen:
            seen.add(node)
            head = head_of(rows[node][1])
            if len(head) >= 3:
                found.add(head)
            node = rows[node][0]
        paths[code] = found
    shared = Counter(h for found in paths.values() for h in found)
    return {code: sorted(h for h in found if shared[h] >= min_codes) for code, found in paths.items()}


class TitleHeads:
    """The heads of a coder's codes and their weight; `term` is what it adds to a log score."""

    def __init__(self, heads: Mapping[str, Sequence[str]], beta: float):
        if not math.isfinite(beta) or beta < 0:
            raise ModelError(f"a title-heads weight must be a number >= 0, not {beta}")
        self.heads = {str(c): sorted({str(h) for h in hs}) for c, hs in heads.items()}
        self.beta = float(beta)
        self.vocabulary = sorted({h for hs in self.heads.values() for h in hs})
        self._at = {h: i for i, h in enumerate(self.vocabulary)}
        self._columns: dict[tuple[str, ...], np.ndarray] = {}     # one entry: the last code order asked

    def _matrix(self, codes: Sequence[str]) -> np.ndarray:
        """(vocabulary, codes) 0/1: which codes have which head (cached per code order)."""
        key = tuple(codes)
        if key not in self._columns:
            matrix = np.zeros((len(self.vocabulary), len(codes)), np.float32)
            for j, code in enumerate(codes):
                for h in self.heads.get(code, ()):
                    matrix[self._at[h], j] = 1.0
            self._columns = {key: matrix}
        return self._columns[key]

    def text_heads(self, text: str) -> list[str]:
        """The heads a text names, by its words' first PREFIX letters."""
        return sorted({w[:PREFIX] for w in words(text)} & self._at.keys())

    def term(self, texts: Sequence[str], codes: Sequence[str]) -> np.ndarray:
        """(texts, codes): log(1 + beta x how many of the text's heads are on the code's path); zero for a
        text that names no head, or with beta 0."""
        out = np.zeros((len(texts), len(codes)), np.float64)
        if not self.beta or not self.vocabulary:
            return out
        matrix = self._matrix(codes)
        for i, text in enumerate(texts):
            found = self.text_heads(text)
            if found:
                out[i] = np.log1p(self.beta * matrix[[self._at[h] for h in found]].sum(axis=0))
        return out

    def to_json(self) -> dict:
        return {"beta": self.beta, "codes": {c: hs for c, hs in self.heads.items() if hs}}

    @classmethod
    def from_json(cls, data: Mapping) -> "TitleHeads":
        try:
            return cls(dict(data["codes"]), float(data["beta"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"an ensemble's title heads cannot be read: {exc}") from exc
