"""Evaluations stored in the project, read back as EvaluationResult objects (the Train page's side-by-side)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.evaluate.metrics import CodeScore, ConfusedPair, CurvePoint, EvaluationResult, Fallback, ReliabilityBin
from engine.store.cache import KeyedCache
from engine.store.project import Project


@dataclass
class StoredEvaluation:
    """An evaluation row of the project, with its metrics rebuilt as an EvaluationResult."""

    id: int
    model_id: int
    dataset: str
    created: str
    report_path: str | None
    result: EvaluationResult


def evaluation_from_dict(data: dict) -> EvaluationResult:
    """The inverse of EvaluationResult.as_dict(), for evaluations read back from the project."""
    return EvaluationResult(
        n=data["n"], top1=data["top1"], top5=data["top5"], macro_f1=data["macro_f1"],
        per_level=dict(data.get("per_level", {})),
        per_code=[CodeScore(**c) for c in data.get("per_code", [])],
        confused=[ConfusedPair(**c) for c in data.get("confused", [])],
        reliability=[ReliabilityBin(**b) for b in data.get("reliability", [])],
        ece=data.get("ece", 0.0),
        curve_prob=[CurvePoint(**p) for p in data.get("curve_prob", [])],
        curve_margin=[CurvePoint(**p) for p in data.get("curve_margin", [])],
        thresholds=dict(data.get("thresholds", {})),
        fallback=Fallback(**data["fallback"]) if data.get("fallback") else None,
        extra=dict(data.get("extra", {})),
    )


# An evaluation's metrics never change once stored (only its report path does), so the parsed result is
# kept by (project file, evaluation id, created): a page refreshing after a training parses only the new
# evaluation, and a worker that reads them first leaves the GUI thread nothing to parse.
# An evaluation's metrics never change once stored (only its report path does), so the parsed result is kept
# by (project file, evaluation id, created): a worker that reads them first leaves the GUI thread nothing to parse.
_PARSED: KeyedCache[EvaluationResult] = KeyedCache()


def _parsed(project: Project, evaluation_id: int, created: str) -> EvaluationResult:
    def parse() -> EvaluationResult:
        (metrics,) = project.conn.execute("SELECT metrics FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
        return evaluation_from_dict(json.loads(metrics))
    return _PARSED.get((str(project.path), evaluation_id, created), parse)


def latest_evaluations(project: Project, *, dataset_prefix: str = "real-test") -> dict[int, StoredEvaluation]:
    """The newest evaluation of each model on the test split (model id -> evaluation).

    The results are shared between callers (and threads): treat them as read-only.
    """
    rows = project.conn.execute(
        "SELECT id, model_id, dataset, created, report_path FROM evaluations WHERE dataset LIKE ? ORDER BY id",
        (dataset_prefix + "%",)).fetchall()
    newest = {row[1]: row for row in rows}   # the last row of each model is its newest
    return {model_id: StoredEvaluation(row[0], row[1], row[2], row[3], row[4], _parsed(project, row[0], row[3]))
            for model_id, row in newest.items()}
