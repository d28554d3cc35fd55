"""Label check: does a classifier that never saw a sample still put the sample's own code near the top?

Confident-learning style: samples are split into k folds; for each fold a classifier is trained on the
other folds (plus real-train texts and note lines, when given) and predicts the held-out fold. The
classifier is fastText by default; any `Checker` can replace it, e.g. the embedding helper's
notes-trained logistic regression, which BENCHMARK.md found to be a good checker.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

from engine.coders.fasttext.model import FastTextCoder
from engine.coders.fasttext.bindings import FastTextParams
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.curate.rules import Hit, Sample

Prediction = list[tuple[str, float]]
# (train_pairs, texts) -> for each text its top codes with scores, best first.
Checker = Callable[[Sequence[tuple[str, str]], Sequence[str]], list[Prediction]]


def fold_params() -> FastTextParams:
    """Small fold models (dim 50, 200k buckets); 50 epochs because small datasets underfit with fewer;
    one thread, so a curation is reproducible (fastText's multi-threaded training is not)."""
    return FastTextParams(epoch=50, lr=0.5, wordNgrams=2, minn=3, maxn=5, dim=50, bucket=200_000, thread=1)


def fasttext_checker(params: FastTextParams | None = None, *, k: int = 10) -> Checker:
    def check(train_pairs: Sequence[tuple[str, str]], texts: Sequence[str]) -> list[Prediction]:
        coder = FastTextCoder.train(list(train_pairs), params or fold_params())
        return coder.predict_many(list(texts), k=k)
    return check


@dataclass
class LabelCheckOptions:
    folds: int = 5
    top_k: int = 3               # flag when the sample's own code is not among the checker's top k
    confident: float = 0.8       # ... or when another code is predicted with at least this score
    mode: str = "kfold"          # kfold: train on other folds too; notes: train on reference texts only
    seed: int = 0
    checker: Checker | None = None
    params: FastTextParams = field(default_factory=fold_params)
    # A second reader of the flags: (sample, checker prediction, hit) -> the hit to keep, or None to drop
    # it (engine.curate.judgecheck.JudgeConfirm: the LLM judge keeps only flags it is confident about).
    confirm: Callable[[Sample, Prediction, Hit], Hit | None] | None = None

    def describe(self) -> dict:
        return {"folds": self.folds, "top_k": self.top_k, "confident": self.confident, "mode": self.mode,
                "seed": self.seed,
                "checker": getattr(self.checker, "__name__", "custom") if self.checker else "fasttext",
                "params": None if self.checker else self.params.as_kwargs(),
                **({"confirm": {"name": getattr(self.confirm, "__name__", "custom"),
                                **(self.confirm.describe() if hasattr(self.confirm, "describe") else {})}}
                   if self.confirm else {})}


@dataclass(frozen=True)
class Check:
    """What the checker said about one sample."""

    sample_id: int
    own_rank: int | None         # 1-based rank of the sample's own code; None when not in the list
    own_score: float
    top_code: str
    top_score: float


def assign_folds(samples: Sequence[Sample], folds: int, seed: int) -> dict[int, int]:
    """Stratified by code, shuffled by seed, so every code is spread over the folds."""
    by_code: dict[str, list[int]] = defaultdict(list)
    for sample in samples:
        by_code[sample.code].append(sample.id)
    rng = random.Random(f"folds:{seed}")
    out: dict[int, int] = {}
    offset = 0
    for code in sorted(by_code):
        ids = sorted(by_code[code])
        rng.shuffle(ids)
        for i, sid in enumerate(ids):
            out[sid] = (i + offset) % folds
        offset += len(ids)  # start each code where the last ended so small codes do not all sit in fold 0
    return out


def label_check(samples: Sequence[Sample], *, reference: Sequence[tuple[str, str]] = (),
                exclude_from_training: set[int] = frozenset(), settled: set[int] = frozenset(),
                options: LabelCheckOptions = LabelCheckOptions(),
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                ) -> tuple[list[Check], list[Hit]]:
    """Check every sample's label; returns what the checker said and the `label_check` hits.

    `reference` pairs (real-train texts, note lines) are in every training set and never predicted.
    Samples in `exclude_from_training` (garbage, duplicates) are predicted but never trained on.
    Samples in `settled` (another rule rejects them, or a user decided them) keep their flags, but the
    second reader (`options.confirm`, slow) does not read them: its answer could not change their outcome.
    """
    checker = options.checker or fasttext_checker(options.params, k=max(options.top_k, 5))
    if not samples:
        return [], []
    if options.mode == "notes":
        groups = [(list(reference), list(samples))]
    elif options.mode == "kfold":
        folds = assign_folds(samples, max(2, options.folds), options.seed)
        groups = []
        for fold in range(max(2, options.folds)):
            held = [s for s in samples if folds[s.id] == fold]
            if not held:
                continue
            train = [(s.text, s.code) for s in samples
                     if folds[s.id] != fold and s.id not in exclude_from_training]
            groups.append((train + list(reference), held))
    else:
        raise ValueError(f"label check mode must be 'kfold' or 'notes', not {options.mode!r}")
    meter = ProgressMeter(len(groups), progress)
    checks: list[Check] = []
    predictions: dict[int, Prediction] = {}
    for done, (train, held) in enumerate(groups):
        if cancel:
            cancel.check()
        if len({code for _, code in train}) < 2:
            continue  # a one-code classifier says nothing about labels
        for sample, prediction in zip(held, checker(train, [s.text for s in held])):
            checks.append(_check(sample, prediction))
            predictions[sample.id] = prediction
        meter.update(done + 1, f"label check: fold {done + 1} of {len(groups)}")
    by_id = {s.id: s for s in samples}
    hits = [hit for check in checks if (hit := _hit(by_id[check.sample_id], check, options)) is not None]
    if options.confirm is not None:
        hits = _second_reading(hits, by_id, predictions, options.confirm, settled, progress, cancel)
    return checks, hits


def _second_reading(hits: list[Hit], by_id: dict[int, Sample], predictions: dict[int, Prediction],
                    confirm: Callable[[Sample, Prediction, Hit], Hit | None], settled: set[int],
                    progress: ProgressCallback | None, cancel: CancelToken | None) -> list[Hit]:
    """The flags that `confirm` keeps, in the flags' order. They are read grouped by the sample's code and
    the checker's code, so that a judge with a cache of candidate cards (the channel judge) reuses them
    from one flag to the next; the reading has its own progress, since it is the slow part. Flags of
    settled samples stand unread, and say so."""
    kept: dict[int, Hit] = {i: Hit(h.sample_id, h.rule, f"{h.reason}; not read by the second reader: another rule "
                                   "or a user already decides this sample", h.suggested_code)
                            for i, h in enumerate(hits) if h.sample_id in settled}
    order = sorted((i for i in range(len(hits)) if i not in kept),
                   key=lambda i: (by_id[hits[i].sample_id].code, hits[i].suggested_code or "", i))
    meter = ProgressMeter(len(order), progress)
    for n, i in enumerate(order):
        if cancel:
            cancel.check()
        hit = hits[i]
        answer = confirm(by_id[hit.sample_id], predictions[hit.sample_id], hit)
        if answer is not None:
            kept[i] = answer
        meter.update(n + 1, f"label check: second reader, flag {n + 1} of {len(order)}")
    return [kept[i] for i in sorted(kept)]


def _check(sample: Sample, prediction: Prediction) -> Check:
    codes = [code for code, _ in prediction]
    rank = codes.index(sample.code) + 1 if sample.code in codes else None
    own = prediction[rank - 1][1] if rank else 0.0
    top_code, top_score = prediction[0] if prediction else ("", 0.0)
    return Check(sample.id, rank, own, top_code, top_score)


def _hit(sample: Sample, check: Check, options: LabelCheckOptions) -> Hit | None:
    if not check.top_code:
        return None
    if check.own_rank is None or check.own_rank > options.top_k:
        where = f"ranked {check.own_rank}" if check.own_rank else "not ranked"
        return Hit(sample.id, "label_check",
                   f"own code {where} by the checker; it predicts {check.top_code} ({check.top_score:.2f})",
                   check.top_code)
    if check.top_code != sample.code and check.top_score >= options.confident:
        return Hit(sample.id, "label_check",
                   f"confidently predicted as {check.top_code} ({check.top_score:.2f}); own code ranked "
                   f"{check.own_rank}", check.top_code)
    return None
