"""The training data of every coder kind: the data mix, the validation carve, and validation scoring.

One place decides which texts train a coder and which validate it, so that coders of different kinds
trained on one mix are validated on the same texts (the same `validation_key`) and can compete.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Sequence

from engine.classification.note_lines import notes_pairs
from engine.errors import TrainingError
from engine.store.project import Project
from engine.text import normalise_key

VALIDATION_SHARE = 0.1
SOURCES = ("notes", "synthetic", "real", "augmented", "pseudo")
Pairs = Sequence[tuple[str, str]]


@dataclass
class DataMix:
    """Which data trains a model. Weights are repetitions: 0 leaves a source out, 2 shows it twice."""

    notes: int = 1
    synthetic: int = 0
    real: int = 0
    augmented: int = 0
    pseudo: int = 0                           # uncoded texts labelled by coder + judge (engine.assist.pseudo)
    run_ids: list[int] | None = None          # synthetic samples from these generation runs only
    codes: list[str] | None = None            # restrict to these leaf codes (subset runs)
    validation_share: float = VALIDATION_SHARE
    # "real": validate on a carve of real-train when the project has real texts (the default);
    # "training": carve validation from the mix's own pairs, so a coder without real data (the
    # zero-real benchmark arm) is tuned without any real text.
    validation_from: str = "real"
    # Hierarchy-aware training (engine.coders.hierarchy): this share of each text's label goes to the
    # code's leaf siblings. 0 = off (the default; see bench/results/methods-dev-*).
    hierarchy_smoothing: float = 0.0
    # The notes arm also takes the excluded activities other codes' notes send to one code ("growing of rice,
    # see 01.12" trains 01.12; engine.classification.note_lines.redirected_lines). All of NACE, zero real, dev
    # half: the ensemble of four 59.6 / 83.3 -> 60.3 / 84.1 %, every member gains
    # (bench/results/ensemble-zero-real-lexical-grams4-redirected-dev-nace-full.md).
    redirected_notes: bool = True

    def weights(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in SOURCES}


@dataclass
class TrainingData:
    train: list[tuple[str, str]]
    validation: list[tuple[str, str]]
    composition: dict[str, Any]
    siblings: dict[str, list[str]] | None = None    # set when the mix smooths towards siblings
    sources: list[str] | None = None                # the source of each training pair (notes, synthetic, ...)
    validation_sources: list[str] | None = None     # the source of each validation pair ('real' for the carve)

    def labels_of(self, smoothing: float):
        """fastText line labels per code (hierarchy smoothing), or None for one label per line."""
        if smoothing <= 0 or not self.siblings:
            return None
        from engine.coders.hierarchy import fasttext_labels
        siblings = self.siblings
        return lambda code: fasttext_labels(code, siblings, smoothing)


def in_validation(text_key: str, share: float) -> bool:
    """A stable carve of the training side, salted so it is independent of the train/test split."""
    if share <= 0:
        return False
    bucket = int(hashlib.sha256(b"validation:" + text_key.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return bucket < share * 10_000


def _code_filter(codes: list[str] | None) -> tuple[str, list[str]]:
    if codes is None:
        return "", []
    return f" AND code IN ({','.join('?' * len(codes))})", list(codes)


def build_training_data(project: Project, mix: DataMix) -> TrainingData:
    """The training pairs of a mix, with validation pairs carved from the real-train texts (never test)."""
    where, args = _code_filter(mix.codes)
    real = project.conn.execute(f"SELECT text, text_key, code FROM real_texts WHERE split = 'train'{where} ORDER BY id",
                                args).fetchall()
    if mix.validation_from not in ("real", "training"):
        raise TrainingError(f"validation_from must be 'real' or 'training', not '{mix.validation_from}'")
    real_share = mix.validation_share if real and mix.validation_from == "real" else 0.0
    validation = [(t, c) for t, k, c in real if in_validation(k, real_share)]
    real_train = [(t, c) for t, k, c in real if not in_validation(k, real_share)]
    validation_sources = ["real"] * len(validation)
    by_source: dict[str, list[tuple[str, str]]] = {s: [] for s in SOURCES}
    if mix.notes:
        by_source["notes"] = list(notes_pairs(project, mix.codes, redirected=mix.redirected_notes))
    if mix.real:
        by_source["real"] = real_train
    if mix.synthetic:
        # The curated label where curation relabelled a sample (engine.curate.store).
        label = "COALESCE(curated_code, code)"
        sql = f"SELECT text, {label} FROM samples WHERE status = 'accepted'{where.replace('code', label)}"
        sargs = list(args)
        if mix.run_ids is not None:
            sql += f" AND run_id IN ({','.join('?' * len(mix.run_ids))})"
            sargs += list(mix.run_ids)
        by_source["synthetic"] = project.conn.execute(sql + " ORDER BY id", sargs).fetchall()
    if mix.augmented:
        # Augmented texts derive from real texts; only those of training-side, non-validation texts may train.
        rows = project.conn.execute(
            "SELECT a.text, a.code, r.text_key FROM augmented_texts a JOIN real_texts r ON r.id = a.real_id"
            f" WHERE r.split = 'train'{where.replace('code', 'a.code')} ORDER BY a.id", args).fetchall()
        by_source["augmented"] = [(t, c) for t, c, k in rows if not in_validation(k, real_share)]
    pseudo_provenance: list[dict] = []
    if mix.pseudo:
        # Confident labels of uncoded texts. Never a test text nor a text of the real validation carve (also
        # if its coded twin came later), and never used to validate: they are the coder's own output.
        rows = project.conn.execute(
            "SELECT u.text, p.code, u.text_key, p.coder_sha256, p.judge_model_sha256 FROM pseudo_labels p"
            " JOIN uncoded_texts u ON u.id = p.uncoded_id WHERE p.status = 'pseudo'"
            " AND u.text_key NOT IN (SELECT text_key FROM real_texts WHERE split = 'test')"
            f"{where.replace('code', 'p.code')} ORDER BY u.id", args).fetchall()
        carved = {k for _, k, _ in real if in_validation(k, real_share)}
        by_source["pseudo"] = [(t, c) for t, c, k, _, _ in rows if k not in carved]
        origins: dict[tuple, int] = {}
        for *_, coder_sha, judge_sha in rows:
            origins[(coder_sha, judge_sha)] = origins.get((coder_sha, judge_sha), 0) + 1
        pseudo_provenance = [{"coder_sha256": c, "judge_model_sha256": j, "labels": n}
                             for (c, j), n in sorted(origins.items(), key=lambda kv: str(kv[0]))]
    if not real_share and mix.validation_share > 0:
        # No real texts to validate on: carve the validation set out of the training pairs themselves.
        for source, pairs in by_source.items():
            if source == "pseudo":
                continue
            carved_pairs = [p for p in pairs if in_validation(normalise_key(p[0]), mix.validation_share)]
            validation += carved_pairs
            validation_sources += [source] * len(carved_pairs)
            by_source[source] = [p for p in pairs if not in_validation(normalise_key(p[0]), mix.validation_share)]
    train: list[tuple[str, str]] = []
    sources: list[str] = []
    for source in SOURCES:
        pairs = by_source[source] * getattr(mix, source)
        train.extend(pairs)
        sources.extend([source] * len(pairs))
    if not train:
        raise TrainingError("the chosen data mix has no training texts")
    if not 0.0 <= mix.hierarchy_smoothing < 1.0:
        raise TrainingError(f"hierarchy smoothing must be at least 0 and below 1, not {mix.hierarchy_smoothing}")
    siblings = None
    if mix.hierarchy_smoothing > 0:
        from engine.coders.hierarchy import sibling_map
        siblings = sibling_map(project, {c for _, c in train})
    composition = {
        "weights": mix.weights(), "run_ids": mix.run_ids, "codes": mix.codes,
        "counts": {s: len(p) for s, p in by_source.items()},
        "train_lines": len(train), "validation": len(validation),
        "validation_from": "real-train" if real_share else "training data",
        "codes_trained": len({c for _, c in train}),
        **({"pseudo_provenance": pseudo_provenance} if mix.pseudo else {}),
        "hierarchy_smoothing": mix.hierarchy_smoothing,
        "redirected_notes": mix.redirected_notes,
    }
    return TrainingData(train, validation, composition, siblings, sources, validation_sources)


def validation_key(pairs: Pairs) -> str:
    """A fingerprint of a validation set: models share it only when they were validated on the same texts."""
    digest = hashlib.sha256()
    for text, code in sorted(pairs):
        digest.update(f"{code}\t{text}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def score_validation(preds: Sequence[Sequence[tuple[str, float]]], pairs: Pairs) -> dict[str, Any] | None:
    """Top-1 and top-5 on validation pairs, keyed by the set, in the form every kind stores."""
    if not pairs:
        return None
    top1 = sum(bool(p) and p[0][0] == c for p, (_, c) in zip(preds, pairs)) / len(pairs)
    top5 = sum(c in {code for code, _ in p[:5]} for p, (_, c) in zip(preds, pairs)) / len(pairs)
    return {"set": validation_key(pairs), "n": len(pairs), "top1": round(top1, 4), "top5": round(top5, 4)}


def log_loss_of(preds: Sequence[Sequence[tuple[str, float]]], gold: Sequence[str]) -> float:
    total = 0.0
    for pred, code in zip(preds, gold):
        total -= math.log(max(dict(pred).get(code, 0.0), 1e-9))
    return total / max(1, len(gold))
