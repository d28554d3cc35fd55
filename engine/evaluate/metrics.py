"""Evaluation of a coder on real coded texts: accuracy per level, per-code scores, calibration, auto-coding curves."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from engine.coders.registry import load_coder
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.store.project import Project
from engine.coders.data import VALIDATION_SHARE, in_validation

Prediction = Sequence[tuple[str, float]]
THRESHOLDS = [i / 100 for i in range(100)]
TARGET_ERRORS = (0.01, 0.02, 0.05, 0.10)
N_BINS = 10
# Below this top probability a suggestion counts as unsure and the parent is offered instead. Fixed, so
# that the fallback figures are never tuned on the texts they are measured on.
FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class Hierarchy:
    """Parents and levels of every code, to find a code's ancestor at a level without the database."""

    parent: dict[str, str | None]
    level: dict[str, int]
    level_names: list[str]

    @classmethod
    def from_project(cls, project: Project) -> "Hierarchy":
        rows = project.conn.execute("SELECT code, parent, level FROM codes").fetchall()
        names = project.get_setting("level_names", []) or []
        return cls({c: p for c, p, _ in rows}, {c: lv for c, _, lv in rows}, list(names))

    def ancestor_at(self, code: str, level: int) -> str | None:
        node: str | None = code
        while node is not None and self.level.get(node, 0) > level:
            node = self.parent.get(node)
        return node if node is not None and self.level.get(node) == level else None

    def level_name(self, level: int) -> str:
        return self.level_names[level - 1] if 0 < level <= len(self.level_names) else f"level {level}"


@dataclass
class CodeScore:
    code: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    train_count: int | None = None


@dataclass
class ConfusedPair:
    gold: str
    predicted: str
    count: int
    siblings: bool


@dataclass
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float | None
    accuracy: float | None


@dataclass
class CurvePoint:
    """Auto-code every text whose confidence is >= threshold: the share coded and the error rate among them."""

    threshold: float
    coverage: float
    error: float | None
    n_auto: int


@dataclass
class Fallback:
    """When the top code's probability is below `threshold`, suggest the parent with the most probability."""

    threshold: float
    n_unsure: int
    share_unsure: float
    leaf_accuracy_unsure: float | None
    parent_accuracy_unsure: float | None
    accuracy_with_fallback: float


@dataclass
class EvaluationResult:
    n: int
    top1: float
    top5: float
    macro_f1: float
    per_level: dict[str, float]
    per_code: list[CodeScore]
    confused: list[ConfusedPair]
    reliability: list[ReliabilityBin]
    ece: float
    curve_prob: list[CurvePoint]
    curve_margin: list[CurvePoint]
    thresholds: dict[str, dict[str, Any]]
    fallback: Fallback | None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "top1": self.top1, "top5": self.top5, "macro_f1": self.macro_f1,
                "per_level": self.per_level, "ece": self.ece}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def per_code_scores(gold: Sequence[str], top1: Sequence[str | None]) -> list[CodeScore]:
    """Precision, recall, F1 for every code seen in the gold codes or the predictions (sklearn's zero_division=0)."""
    support, predicted, hits = Counter(gold), Counter(p for p in top1 if p is not None), Counter()
    for g, p in zip(gold, top1):
        if g == p:
            hits[g] += 1
    scores = []
    for code in sorted(set(support) | set(predicted)):
        p = hits[code] / predicted[code] if predicted[code] else 0.0
        r = hits[code] / support[code] if support[code] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        scores.append(CodeScore(code, p, r, f1, support[code], predicted[code]))
    return scores


def reliability(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS) -> tuple[list[ReliabilityBin], float]:
    """Equal-width bins of the top probability, and the expected calibration error over them."""
    members: list[list[int]] = [[] for _ in range(n_bins)]
    for i, conf in enumerate(confidences):
        members[min(int(conf * n_bins), n_bins - 1)].append(i)
    bins, ece, total = [], 0.0, len(confidences)
    for b, idx in enumerate(members):
        if idx:
            conf = sum(confidences[i] for i in idx) / len(idx)
            acc = sum(correct[i] for i in idx) / len(idx)
            ece += len(idx) / total * abs(acc - conf)
            bins.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, len(idx), conf, acc))
        else:
            bins.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, 0, None, None))
    return bins, ece


def auto_coding_curve(scores: Sequence[float], correct: Sequence[bool],
                      thresholds: Sequence[float] = THRESHOLDS) -> list[CurvePoint]:
    total = len(scores)
    points = []
    for t in thresholds:
        auto = [ok for s, ok in zip(scores, correct) if s >= t]
        wrong = sum(not ok for ok in auto)
        points.append(CurvePoint(t, len(auto) / total if total else 0.0, _ratio(wrong, len(auto)), len(auto)))
    return points


def choose_threshold(curve: Sequence[CurvePoint], target_error: float) -> CurvePoint | None:
    """The threshold that auto-codes the most texts while keeping their error rate <= target."""
    ok = [p for p in curve if p.n_auto and p.error is not None and p.error <= target_error]
    return max(ok, key=lambda p: (p.coverage, -p.threshold)) if ok else None


def fallback_scores(gold: Sequence[str], preds: Sequence[Prediction], hierarchy: Hierarchy,
                    threshold: float) -> Fallback:
    n_unsure = leaf_hits = parent_hits = confident_hits = 0
    for g, pred in zip(gold, preds):
        top_code, top_prob = pred[0] if pred else (None, 0.0)
        if top_prob >= threshold:
            confident_hits += top_code == g
            continue
        n_unsure += 1
        leaf_hits += top_code == g
        mass: dict[str | None, float] = defaultdict(float)
        for code, prob in pred:
            mass[hierarchy.parent.get(code)] += prob
        parent = max(mass, key=mass.get) if mass else None  # type: ignore[arg-type]
        parent_hits += parent is not None and parent == hierarchy.parent.get(g)
    total = len(gold)
    return Fallback(threshold, n_unsure, n_unsure / total if total else 0.0, _ratio(leaf_hits, n_unsure),
                    _ratio(parent_hits, n_unsure), (confident_hits + parent_hits) / total if total else 0.0)


def compute_metrics(gold: Sequence[str], preds: Sequence[Prediction], hierarchy: Hierarchy, *,
                    train_counts: dict[str, int] | None = None, top_confused: int = 30,
                    fallback_threshold: float = FALLBACK_THRESHOLD) -> EvaluationResult:
    """Every metric of one evaluation from gold codes and ranked predictions (best first, with probabilities)."""
    if len(gold) != len(preds):
        raise ValueError("gold codes and predictions differ in length")
    n = len(gold)
    top1 = [p[0][0] if p else None for p in preds]
    conf = [p[0][1] if p else 0.0 for p in preds]
    margin = [(p[0][1] - (p[1][1] if len(p) > 1 else 0.0)) if p else 0.0 for p in preds]
    correct = [g == t for g, t in zip(gold, top1)]
    top5 = sum(g in {c for c, _ in p[:5]} for g, p in zip(gold, preds)) / n if n else 0.0
    per_code = per_code_scores(gold, top1)
    if train_counts is not None:
        for score in per_code:
            score.train_count = train_counts.get(score.code, 0)
    macro_f1 = sum(s.f1 for s in per_code) / len(per_code) if per_code else 0.0
    levels = sorted({hierarchy.level.get(g, 0) for g in gold if g in hierarchy.level})
    per_level: dict[str, float] = {}
    for level in range(1, (max(levels) if levels else 0) + 1):
        hits = sum(t is not None and hierarchy.ancestor_at(t, level) is not None
                   and hierarchy.ancestor_at(t, level) == hierarchy.ancestor_at(g, level)
                   for g, t in zip(gold, top1))
        per_level[hierarchy.level_name(level)] = hits / n if n else 0.0
    pairs = Counter((g, t) for g, t in zip(gold, top1) if t is not None and g != t)
    confused = [ConfusedPair(g, t, c, hierarchy.parent.get(g) is not None and hierarchy.parent.get(g) == hierarchy.parent.get(t))
                for (g, t), c in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_confused]]
    bins, ece = reliability(conf, correct)
    curve_prob, curve_margin = auto_coding_curve(conf, correct), auto_coding_curve(margin, correct)
    thresholds: dict[str, dict[str, Any]] = {}
    for target in TARGET_ERRORS:
        for name, curve in (("prob", curve_prob), ("margin", curve_margin)):
            point = choose_threshold(curve, target)
            thresholds[f"{name}@{target:g}"] = dataclasses.asdict(point) if point else {"threshold": None}
    fallback = fallback_scores(gold, preds, hierarchy, fallback_threshold) if n else None
    return EvaluationResult(n=n, top1=sum(correct) / n if n else 0.0, top5=top5, macro_f1=macro_f1,
                            per_level=per_level, per_code=per_code, confused=confused, reliability=bins, ece=ece,
                            curve_prob=curve_prob, curve_margin=curve_margin, thresholds=thresholds,
                            fallback=fallback)


def evaluation_texts(project: Project, split: str, codes: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(text, code) pairs to evaluate on: 'test', or 'validation' (the carve of real-train that training held out)."""
    sql = "SELECT text, text_key, code FROM real_texts WHERE split = ?"
    args: list[Any] = ["train" if split == "validation" else split]
    if codes is not None:
        sql += f" AND code IN ({','.join('?' * len(codes))})"
        args += list(codes)
    rows = project.conn.execute(sql + " ORDER BY id", args).fetchall()
    if split == "validation":
        return [(t, c) for t, k, c in rows if in_validation(k, VALIDATION_SHARE)]
    return [(t, c) for t, _, c in rows]


def evaluate_model(project: Project, model_id: int | None = None, *, split: str = "test",
                   codes: Sequence[str] | None = None, dataset: str | None = None, store: bool = True,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                   chunk: int = 500) -> tuple[EvaluationResult, int | None]:
    """Evaluate a model (the default if None) on real texts; store an evaluation row. Returns (result, row id)."""
    coder, record = load_coder(project, model_id)
    pairs = evaluation_texts(project, split, codes)
    meter = ProgressMeter(len(pairs), progress)
    preds: list[Prediction] = []
    for start in range(0, len(pairs), chunk):
        if cancel is not None:
            cancel.check()
        preds.extend(coder.predict_many([t for t, _ in pairs[start:start + chunk]], 5))
        meter.update(min(len(pairs), start + chunk), "evaluating")
    train_counts = (record.data or {}).get("per_code")
    result = compute_metrics([c for _, c in pairs], preds, Hierarchy.from_project(project), train_counts=train_counts)
    result.extra = {"model_id": record.id, "model_sha256": record.sha256, "split": split,
                    "codes": len(codes) if codes is not None else None}
    row_id = None
    if store:
        name = dataset or (f"real-{split}" + (f" ({len(codes)} codes)" if codes is not None else ""))
        with project.transaction() as conn:
            row_id = int(conn.execute("INSERT INTO evaluations (model_id, dataset, metrics) VALUES (?, ?, ?)",
                                      (record.id, name, json.dumps(result.as_dict()))).lastrowid)
    return result, row_id


def set_report_path(project: Project, evaluation_id: int, path: str) -> None:
    with project.transaction() as conn:
        conn.execute("UPDATE evaluations SET report_path = ? WHERE id = ?", (path, evaluation_id))
