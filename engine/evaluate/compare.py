"""Comparing coders on the same texts, and evaluating a coder on the texts of the codes it knows.

A coder for NACE 10-11 scored on all 8,070 test texts reports 3.6 % instead of 72.9 %, and a table
that puts a 10-11 coder (402 texts) beside an all-codes coder (8,070 texts) compares two different
exams. Here: the default evaluation set of a coder, scores recomputed on the texts every model was
evaluated on, and the check that keeps a new coder from replacing the serving one when it does worse
on the texts both know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from engine.coders.registry import default_model_id, get_model, load_coder, set_default_model
from engine.coders.coverage import Coverage, coverage, trained_codes
from engine.evaluate.metrics import EvaluationResult, evaluation_texts
from engine.store.project import Project


@dataclass(frozen=True)
class EvaluationScope:
    """The texts a coder is evaluated on by default: those of the codes it was trained for."""

    codes: list[str] | None       # None: every code (the coder knows the whole classification)
    coverage: Coverage
    n_texts: int

    def describe(self, split: str = "test") -> str:
        if self.codes is None:
            return f"{self.n_texts:,} {split} texts (every code)"
        return f"the {self.n_texts:,} {split} texts of the {self.coverage.describe()} the coder was trained for"


def default_scope(project: Project, model_id: int | None = None, *, split: str = "test") -> EvaluationScope:
    """Evaluate on the texts of the coder's own codes: a text of a code it never saw can only be wrong."""
    model_id = model_id if model_id is not None else default_model_id(project)
    record = get_model(project, model_id)  # type: ignore[arg-type]
    cover = coverage(project, trained_codes(project, record))
    codes = list(cover.codes) if cover.partial else None
    return EvaluationScope(codes, cover, len(evaluation_texts(project, split, codes)))


@dataclass(frozen=True)
class SharedTexts:
    """Top-1 of several evaluations recomputed on the texts all of them were evaluated on."""

    n: int
    codes: int
    top1: dict[int, float]      # model id -> top-1 on the shared texts
    differ: bool                # the evaluations were not all on the same texts


def shared_texts(results: Mapping[int, EvaluationResult]) -> SharedTexts | None:
    """From the stored per-code scores: top-1 on a set of codes is the hits (recall x support) of those
    codes over their texts, so no model has to be run again. None when no code is shared."""
    if not results:
        return None
    gold = {m: {s.code: s for s in r.per_code if s.support} for m, r in results.items()}
    shared = set.intersection(*(set(g) for g in gold.values()))
    if not shared:
        return None
    differ = len({frozenset(g) for g in gold.values()}) > 1
    top1: dict[int, float] = {}
    n = 0
    for model, scores in gold.items():
        support = sum(scores[c].support for c in shared)
        hits = sum(round(scores[c].recall * scores[c].support) for c in shared)
        top1[model] = hits / support if support else 0.0
        n = support
    return SharedTexts(n, len(shared), top1, differ)


@dataclass(frozen=True)
class Comparison:
    """Two coders on the same held-out texts (the validation carve of real-train, codes both know)."""

    n: int
    codes: int
    top1: dict[int, float]


def compare_on_validation(project: Project, model_ids: Sequence[int]) -> Comparison | None:
    """Top-1 of each model on the validation texts of the codes every one of them knows (never the test
    split: this chooses a model). None when there are no such texts (a project without real texts)."""
    records = [get_model(project, m) for m in model_ids]
    codes = sorted(set.intersection(*(set(trained_codes(project, r)) for r in records)))
    pairs = evaluation_texts(project, "validation", codes) if codes else []
    if not pairs:
        return None
    texts = [t for t, _ in pairs]
    top1 = {}
    for record in records:
        coder, _ = load_coder(project, record.id)
        preds = coder.predict_many(texts, 1)
        top1[record.id] = sum(bool(p) and p[0][0] == c for p, (_, c) in zip(preds, pairs)) / len(pairs)
    return Comparison(len(pairs), len(codes), top1)


@dataclass(frozen=True)
class ServingDecision:
    """Which coder serves after a training run, and what the user must be told."""

    serving: int | None
    new: int
    replaced: bool                 # the new model serves now
    kept_better: bool              # the serving model was kept because the new one did worse on the same texts
    message: str


def serving_after_training(project: Project, new_id: int, previous_id: int | None) -> ServingDecision:
    """Keep the coder that served before a training run when the new one, which the validation-set rule
    would make the default, scores worse on the validation texts both know.

    Validation scores on different sets (a 10-11 coder's 402 texts, an all-codes coder's 8,070) are not
    comparable: choose_default_model only compares models validated on the same set, so a new model with
    a set of its own became the default whatever it scored.
    """
    serving = default_model_id(project)
    if previous_id is None or previous_id == new_id:
        replaced = serving == new_id
        message = (f"Model {new_id} is now used for coding." if replaced else
                   f"Model {serving} is still used for coding.")
        return ServingDecision(serving, new_id, replaced, False, message)
    new, old = get_model(project, new_id), get_model(project, previous_id)
    comparison = compare_on_validation(project, [new_id, previous_id])
    if comparison is None:
        message = (f"Model {new_id} is now used for coding" if serving == new_id else
                   f"Model {serving} is still used for coding")
        return ServingDecision(serving, new_id, serving == new_id, False,
                               f"{message} (no validation texts to compare models {new_id} and {previous_id} on).")
    new_score, old_score = comparison.top1[new_id], comparison.top1[previous_id]
    same = (f"on the same {comparison.n:,} validation texts ({comparison.codes:,} codes both were trained for): "
            f"model {new_id} ({new.name}) {new_score:.1%}, model {previous_id} ({old.name}) {old_score:.1%}")
    worse = new_score < old_score
    if serving == new_id and not worse:
        return ServingDecision(new_id, new_id, True, False, f"Model {new_id} is now used for coding; {same}.")
    if serving == new_id:
        set_default_model(project, previous_id)
        serving = previous_id
    # Kept (by this rule or the registry's own): the user may still choose the new one.
    return ServingDecision(serving, new_id, False, worse, f"Model {serving} is still used for coding: {same}.")
