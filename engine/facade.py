"""Small read-only queries the desktop needs that no stage module offers: counts per code and previews."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.classification import get_code
from engine.classification.reading import detect_delimiter, read_json_records, read_text
from engine.errors import ClassificationError, Problem
from engine.store.project import Project

if TYPE_CHECKING:
    from engine.evaluate.metrics import EvaluationResult

_SUBTREE = """
WITH RECURSIVE subtree(code) AS (
    SELECT ? UNION ALL SELECT codes.code FROM codes JOIN subtree ON codes.parent = subtree.code
)
"""


@dataclass(frozen=True)
class CodeCounts:
    """Texts held for a code and every code below it."""

    real_train: int
    real_test: int
    synthetic: int
    accepted: int
    corrections: int


def code_counts(project: Project, code: str) -> CodeCounts:
    get_code(project, code)  # raises UnknownCodeError for a code not in the classification
    conn = project.conn

    def one(sql: str) -> int:
        return conn.execute(_SUBTREE + sql, (code,)).fetchone()[0]

    return CodeCounts(
        real_train=one("SELECT COUNT(*) FROM real_texts WHERE split = 'train' AND code IN subtree"),
        real_test=one("SELECT COUNT(*) FROM real_texts WHERE split = 'test' AND code IN subtree"),
        synthetic=one("SELECT COUNT(*) FROM samples WHERE code IN subtree"),
        accepted=one("SELECT COUNT(*) FROM samples WHERE status = 'accepted' AND code IN subtree"),
        corrections=one("SELECT COUNT(*) FROM corrections WHERE chosen_code IN subtree"),
    )


@dataclass
class FilePreview:
    """The columns of a CSV or JSON file and its first rows, read before any mapping is chosen."""

    columns: list[str]
    rows: list[dict[str, str]]
    total_rows: int


def preview_file(path: str | Path, *, encoding: str = "utf-8", limit: int = 20) -> FilePreview:
    """Read a classification or coded-text file for a column-mapping preview; damage is a located error."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        records = read_json_records(path, encoding, ClassificationError)
        columns: list[str] = []
        for _, record in records:
            columns.extend(k for k in record if k not in columns)
        rows = [{k: str(v) for k, v in record.items()} for _, record in records[:limit]]
        return FilePreview(columns, rows, len(records))
    # Only the first rows are parsed into a table (the GUI calls this on its own thread); the rest are
    # counted with the C csv reader. The importer validates every row before anything is written.
    text = read_text(path, encoding, ClassificationError)
    if not text.strip():
        raise ClassificationError([Problem(str(path), None, "the file is empty")])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(text))
    try:
        header = [h.strip() for h in next(reader)]
        rows = [dict(zip(header, values)) for values in itertools.islice(reader, limit)]
        total = len(rows) + sum(1 for _ in reader)
    except csv.Error as exc:
        raise ClassificationError([Problem(str(path), None, f"malformed CSV ({exc})")]) from None
    return FilePreview([h for h in header if h], rows, total)


@dataclass
class StoredEvaluation:
    """An evaluation row of the project, with its metrics rebuilt as an EvaluationResult."""

    id: int
    model_id: int
    dataset: str
    created: str
    report_path: str | None
    result: "EvaluationResult"


def evaluation_from_dict(data: dict) -> "EvaluationResult":
    """The inverse of EvaluationResult.as_dict(), for evaluations read back from the project."""
    from engine.evaluate.metrics import CodeScore, ConfusedPair, CurvePoint, EvaluationResult, Fallback, ReliabilityBin

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
    import json

    rows = project.conn.execute(
        "SELECT id, model_id, dataset, created, report_path, metrics FROM evaluations WHERE dataset LIKE ? ORDER BY id",
        (dataset_prefix + "%",)).fetchall()
    out: dict[int, StoredEvaluation] = {}
    for row in rows:
        out[row[1]] = StoredEvaluation(row[0], row[1], row[2], row[3], row[4], evaluation_from_dict(json.loads(row[5])))
    return out
