"""Evaluations stored in the project, read back as EvaluationResult objects (the Train page's side-by-side)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.evaluate.metrics import CodeScore, ConfusedPair, CurvePoint, EvaluationResult, Fallback, ReliabilityBin
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


def latest_evaluations(project: Project, *, dataset_prefix: str = "real-test") -> dict[int, StoredEvaluation]:
    """The newest evaluation of each model on the test split (model id -> evaluation)."""
    rows = project.conn.execute(
        "SELECT id, model_id, dataset, created, report_path, metrics FROM evaluations WHERE dataset LIKE ? ORDER BY id",
        (dataset_prefix + "%",)).fetchall()
    out: dict[int, StoredEvaluation] = {}
    for row in rows:
        out[row[1]] = StoredEvaluation(row[0], row[1], row[2], row[3], row[4], evaluation_from_dict(json.loads(row[5])))
    return out
