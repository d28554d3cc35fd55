"""The lexical coder: BM25 between a text and each code's training lines taken together as one document.

Every code's training lines (title, notes, synthetic or real texts) are pooled into one bag of terms (the
words, and each word's character 4-grams, so 'brewery' meets 'brewing' and a typo still shares most of its
word); a text scores each code by BM25 over the terms it shares with it, and a softmax with a temperature
fitted on the validation lines turns the scores into probabilities. It learns nothing, trains in seconds and
sees what an embedding model blurs: the one word that places a text ('wholesale', 'retail', 'repair', 'leather'). Alone it
is weaker than the kNN; as a member of the log ensemble it adds what the others miss (all of NACE, zero real:
bench/results/ensemble-zero-real-lexical-dev-nace-full.md).

Two terms beside BM25 (format 3): coverage, the IDF-weighted share of the text's words (by their first four
letters) that the code's lines hold, so a code that matches every word of "beer (wholesale)" beats one that
matches the rarest word many times; and a prior from the length of the code's notes (log of 1 + its notes
lines): a code the classification describes at length covers more activities, so more texts.

The model file is an .npz: codes, the vocabulary, the BM25 weights per term (sparse, by term), the n-gram
length its terms were cut with, and the coverage and prior terms (format 1 files hold words only, format 2
files no coverage or prior; both still load and score as they did).
"""

from __future__ import annotations

import math
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.coders.base import CoderBase, Prediction, TrainedModel
from engine.coders.calibration import fit_temperature, softmax
from engine.coders.data import DataMix, TrainingData, build_training_data, score_validation
from engine.coders.registry import register_trained, write_model_file
from engine.errors import ModelError, TrainingError
from engine.jobs import CancelToken, ProgressCallback, ProgressInfo
from engine.store.project import Project
from engine.text import words

FORMAT = "statcoder-lexical/3"
# /1: words only, no 'grams' entry; /2: no coverage or prior
FORMATS = ("statcoder-lexical/1", "statcoder-lexical/2", FORMAT)
# Words plus their character 4-grams: on all of NACE (zero real, dev half) the coder alone 46.5 -> 51.3 % top-1
# and the log ensemble of four 58.9 -> 59.6 % (bench/results/ensemble-zero-real-lexical-grams4-dev-nace-full.md).
# A probe on the same half, ensemble weights (1, 0.25, 0.25, 0.25): 3-grams 59.2 %, 4-grams 59.4 %, 5-grams 59.3 %.
GRAMS = 4
# The coverage and prior weights, in BM25 score units: chosen on all of NACE, zero real, dev half, among 20 pairs
# (bench/results/ensemble-zero-real-lexical-grams4-redirected-coverage-dev-nace-full.md): the ensemble of four
# 60.3 / 84.1 -> 60.7 / 84.3 % (32 and 3: 60.7 / 84.2).
COVERAGE = 48.0
PRIOR = 3.0
PREFIX = 4      # words are matched for coverage by their first four letters ('brewery' ~ 'brewing')


def terms(text: str, grams: int = GRAMS) -> list[str]:
    """The text's words, then (grams > 0) each word's character n-grams with its ends marked: 'beer' gives
    '#<bee' and '#beer' and '#eer>'. A '#' starts every n-gram, so no n-gram is taken for a word."""
    found = words(text)
    if grams <= 0:
        return found
    out = list(found)
    for word in found:
        marked = f"<{word}>"
        out += ["#" + marked[i:i + grams] for i in range(max(1, len(marked) - grams + 1))]
    return out


@dataclass(frozen=True)
class LexicalOptions:
    k1: float = 1.2        # term-frequency saturation
    b: float = 0.5         # length normalisation: a code with many lines is not favoured for sheer size
    grams: int = GRAMS     # character n-grams of each word as terms beside the words (0: words only)
    coverage: float = COVERAGE   # weight of the share of the text's words the code's lines hold (0: off)
    prior: float = PRIOR         # weight of log(1 + the code's notes lines) (0: off)
    name: str = ""
    make_default: bool = True


class LexicalCoder(CoderBase):
    """BM25 weights kept per term (the codes whose lines hold it, and its weight for each): a text's scores
    are the sum over its distinct known terms, so memory and time follow the terms, not codes x vocabulary."""

    kind = "lexical"

    def __init__(self, codes: Sequence[str], vocabulary: Sequence[str], indptr: np.ndarray, rows: np.ndarray,
                 data: np.ndarray, temperature: float = 1.0, grams: int = GRAMS, *, coverage: float = 0.0,
                 prefixes: Sequence[str] = (), prefix_indptr: np.ndarray | None = None,
                 prefix_rows: np.ndarray | None = None, bias: np.ndarray | None = None):
        prefix_indptr = np.zeros(1, np.int64) if prefix_indptr is None else prefix_indptr
        prefix_rows = np.zeros(0, np.int32) if prefix_rows is None else prefix_rows
        bias = np.zeros(len(codes), np.float32) if bias is None else bias
        if len(indptr) != len(vocabulary) + 1 or int(indptr[-1]) != len(rows) or len(rows) != len(data) \
                or (len(rows) and int(rows.max()) >= len(codes)) or len(prefix_indptr) != len(prefixes) + 1 \
                or int(prefix_indptr[-1]) != len(prefix_rows) or len(bias) != len(codes) \
                or (len(prefix_rows) and int(prefix_rows.max()) >= len(codes)):
            raise ModelError("a lexical coder's weights do not match its codes and words")
        self.codes = list(codes)
        self.vocabulary = list(vocabulary)
        self.index = {w: j for j, w in enumerate(self.vocabulary)}
        self.indptr, self.rows = indptr.astype(np.int64), rows.astype(np.int32)
        self.data = data.astype(np.float32)
        self.temperature = float(temperature)
        self.grams = int(grams)
        self.coverage = float(coverage)
        self.prefixes = list(prefixes)
        self.prefix_index = {p: j for j, p in enumerate(self.prefixes)}
        self.prefix_indptr, self.prefix_rows = prefix_indptr.astype(np.int64), prefix_rows.astype(np.int32)
        self.bias = bias.astype(np.float32)
        counts = np.diff(self.prefix_indptr)
        self.prefix_idf = np.log1p(len(self.codes) / (counts + 0.5)).astype(np.float32)
        self.unknown_idf = float(np.log1p(len(self.codes) / 0.5))

    @classmethod
    def fit(cls, pairs: Sequence[tuple[str, str]], *, k1: float = 1.2, b: float = 0.5, grams: int = GRAMS,
            coverage: float = 0.0, prior: float = 0.0, notes_lines: dict[str, int] | None = None) -> "LexicalCoder":
        """BM25 weights of every (code, term) from the code's pooled lines; codes and terms in sorted order.
        `coverage` weighs the share of a text's words the code's lines hold; `prior` weighs log(1 + the
        code's count in `notes_lines`)."""
        if not pairs:
            raise TrainingError("the lexical coder needs at least one training line")
        bags: dict[str, Counter] = {}
        for text, code in pairs:
            bags.setdefault(code, Counter()).update(terms(text, grams))
        codes = sorted(bags)
        postings: dict[str, list[tuple[int, int]]] = {}
        for i, code in enumerate(codes):
            for w, n in bags[code].items():
                postings.setdefault(w, []).append((i, n))
        vocabulary = sorted(postings)
        length = np.array([sum(bags[c].values()) for c in codes], np.float64)
        norm = k1 * (1 - b + b * length / max(float(length.mean()), 1e-9))
        indptr, rows, data = [0], [], []
        for w in vocabulary:
            posting = postings[w]
            idf = math.log1p((len(codes) - len(posting) + 0.5) / (len(posting) + 0.5))
            for i, n in posting:
                rows.append(i)
                data.append(idf * n * (k1 + 1) / (n + norm[i]))
            indptr.append(len(rows))
        held: dict[str, set[int]] = {}
        if coverage:
            at = {c: i for i, c in enumerate(codes)}
            for text, code in pairs:
                for w in words(text):
                    held.setdefault(w[:PREFIX], set()).add(at[code])
        prefixes = sorted(held)
        prefix_rows = [i for p in prefixes for i in sorted(held[p])]
        prefix_indptr = np.cumsum([0] + [len(held[p]) for p in prefixes])
        bias = np.array([prior * math.log1p((notes_lines or {}).get(c, 0)) for c in codes], np.float32)
        return cls(codes, vocabulary, np.array(indptr), np.array(rows, np.int32), np.array(data, np.float32),
                   grams=grams, coverage=coverage, prefixes=prefixes, prefix_indptr=prefix_indptr,
                   prefix_rows=np.array(prefix_rows, np.int32), bias=bias)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, codes) scores: BM25 (the sum of the code's weights over the text's distinct known terms),
        plus the coverage term and the code's prior when the coder has them."""
        out = np.zeros((len(texts), len(self.codes)), np.float32)
        for row, text in enumerate(texts):
            for j in {self.index[w] for w in terms(text, self.grams) if w in self.index}:
                lo, hi = self.indptr[j], self.indptr[j + 1]
                out[row, self.rows[lo:hi]] += self.data[lo:hi]
            if self.coverage:
                found = {w[:PREFIX] for w in words(text)}
                known = [self.prefix_index[p] for p in found if p in self.prefix_index]
                total = float(sum(self.prefix_idf[j] for j in known)) + self.unknown_idf * (len(found) - len(known))
                for j in known:
                    lo, hi = self.prefix_indptr[j], self.prefix_indptr[j + 1]
                    out[row, self.prefix_rows[lo:hi]] += self.coverage * self.prefix_idf[j] / total
        return out + self.bias

    def calibrate(self, texts: Sequence[str], codes: Sequence[str]) -> float:
        """Fit the temperature on held-out lines whose code this coder knows; returns it."""
        at = {c: i for i, c in enumerate(self.codes)}
        keep = [(t, at[c]) for t, c in zip(texts, codes) if c in at]
        if keep:
            self.temperature = fit_temperature(self.scores([t for t, _ in keep]), np.array([y for _, y in keep]))
        return self.temperature

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[Prediction]:
        if not texts:
            return []
        probs = softmax(self.scores(texts) / self.temperature)
        # codes are in sorted order, so a stable sort puts ties to the smaller code
        tops = np.argsort(-probs, axis=1, kind="stable")[:, :max(1, k)]
        return [[(self.codes[j], float(row[j])) for j in top] for row, top in zip(probs, tops)]

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, format=np.array(FORMAT), codes=np.array(self.codes),
                                vocabulary=np.array(self.vocabulary), indptr=self.indptr, rows=self.rows,
                                data=self.data, temperature=np.array(self.temperature),
                                grams=np.array(self.grams), coverage=np.array(self.coverage),
                                prefixes=np.array(self.prefixes, dtype=str), prefix_indptr=self.prefix_indptr,
                                prefix_rows=self.prefix_rows, bias=self.bias)

    @classmethod
    def load(cls, path: Path) -> "LexicalCoder":
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) not in FORMATS:
                    raise ModelError(f"{path} is not a statcoder lexical model ({z['format']})")
                grams = int(z["grams"]) if "grams" in z.files else 0
                extra = {}
                if "coverage" in z.files:
                    extra = dict(coverage=float(z["coverage"]), prefixes=[str(p) for p in z["prefixes"]],
                                 prefix_indptr=z["prefix_indptr"], prefix_rows=z["prefix_rows"], bias=z["bias"])
                return cls([str(c) for c in z["codes"]], [str(w) for w in z["vocabulary"]], z["indptr"], z["rows"],
                           z["data"], float(z["temperature"]), grams, **extra)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelError(f"the lexical model {path} cannot be read: {exc}") from exc


def notes_line_counts(data: TrainingData) -> Counter:
    """How many notes lines of each code train the coder (the prior's counts), whatever else trains it."""
    return Counter(code for (_, code), source in zip(data.train, data.sources or []) if source == "notes")


def train_lexical(project: Project, mix: DataMix, options: LexicalOptions | None = None, *,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> TrainedModel:
    """Build the mix, pool each code's lines, fit the temperature on the validation lines, store, register."""
    options = options or LexicalOptions()
    start = time.perf_counter()
    data = build_training_data(project, mix)
    if cancel is not None:
        cancel.check()
    coder = LexicalCoder.fit(data.train, k1=options.k1, b=options.b, grams=options.grams, coverage=options.coverage,
                             prior=options.prior, notes_lines=notes_line_counts(data))
    if progress is not None:
        progress(ProgressInfo(600, 1000, "calibrating"))
    coder.calibrate([t for t, _ in data.validation], [c for _, c in data.validation])
    validation = score_validation(coder.predict_many([t for t, _ in data.validation], 5), data.validation)
    if cancel is not None:
        cancel.check()
    path = write_model_file(project, "lexical", ".npz", coder.save, "lexical coder")
    train_s = time.perf_counter() - start
    params = {"k1": options.k1, "b": options.b, "grams": options.grams, "coverage": options.coverage,
              "prior": options.prior, "temperature": round(coder.temperature, 6),
              "vocabulary": len(coder.vocabulary)}
    composition = {**data.composition, "per_code": dict(Counter(c for _, c in data.train))}
    name = options.name or f"lexical {time.strftime('%Y-%m-%d %H:%M')}"
    trained = register_trained(project, kind="lexical", name=name, path=path, params=params, composition=composition,
                               train_s=train_s, validation=validation, make_default=options.make_default)
    if progress is not None:
        progress(ProgressInfo(1000, 1000, "trained"))
    return trained
