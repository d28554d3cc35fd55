"""Train embedding coders on the same data mixes as fastText, calibrate them on validation, register them."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.coders.base import choose_default_model, models_folder
from engine.jobs import CancelToken, ProgressCallback, ProgressInfo
from engine.store.project import Project
from engine.text import file_sha256
from engine.coders.training import DataMix, TrainingData, _validation_key, build_training_data
from engine.coders.embedding.cache import CacheStats, embed_cached
from engine.coders.embedding.classifier import accuracy, fit_logistic, fit_temperature, softmax
from engine.coders.embedding.coder import EmbeddingCoder
from engine.coders.embedding.model import EmbeddingModel, load_embedding_model

C_GRID = (10.0, 100.0, 1000.0)
DEFAULT_C = 100.0           # BENCHMARK.md's setting, used when there is nothing to validate on
KNN_TEMPERATURE = 0.05      # cosine gaps are small; used when there is nothing to calibrate on


@dataclass
class EmbeddingTrainOptions:
    mode: str = "lr"                             # lr | knn
    c_grid: Sequence[float] = C_GRID             # chosen on validation (top-1, then log-loss)
    max_iter: int = 300
    name: str = ""
    model_path: str | None = None                # a GGUF embedding model; None: the shipped MiniLM
    threads: int | None = None
    make_default: bool = True


@dataclass
class EmbeddingTrainResult:
    model_id: int
    path: Path
    sha256: str
    train_s: float
    params: dict[str, Any]
    composition: dict[str, Any]
    validation: dict[str, Any] | None
    cache: CacheStats = field(default_factory=CacheStats)
    coder: EmbeddingCoder | None = None


def _scaled(progress: ProgressCallback | None, start: float, end: float, message: str) -> ProgressCallback | None:
    """Map a sub-job's progress onto part of the whole bar (Orange3's wrap_callback)."""
    if progress is None:
        return None

    def report(info: ProgressInfo) -> None:
        done = start + (end - start) * info.fraction
        progress(ProgressInfo(int(done * 1000), 1000, info.message or message, info.eta_s, info.rates))
    return report


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    return -float(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-30)).mean()) if len(y) else 0.0


def fit_embedding_coder(embedder: EmbeddingModel, train_x: np.ndarray, train_codes: Sequence[str],
                        val_x: np.ndarray, val_codes: Sequence[str], *, mode: str = "lr",
                        c_grid: Sequence[float] = C_GRID, max_iter: int = 300,
                        cancel: CancelToken | None = None) -> tuple[EmbeddingCoder, dict[str, Any]]:
    """Fit on the training vectors; choose C and the temperature on the validation vectors (never on test)."""
    codes = sorted(set(train_codes))
    index = {c: i for i, c in enumerate(codes)}
    y = np.array([index[c] for c in train_codes], dtype=np.int64)
    known = [i for i, c in enumerate(val_codes) if c in index]
    vx = val_x[known] if len(known) else np.zeros((0, train_x.shape[1]), np.float32)
    vy = np.array([index[val_codes[i]] for i in known], dtype=np.int64)
    report: dict[str, Any] = {"mode": mode, "classes": len(codes), "train": len(y), "validation": len(vy)}
    if mode == "knn":
        coder = EmbeddingCoder(mode="knn", codes=codes, embedder=embedder, temperature=1.0,
                               refs=train_x.astype(np.float32), ref_labels=y)
    else:
        grid = sorted(c_grid) if len(vy) else [DEFAULT_C]
        best, best_key, tried, previous = None, None, [], None
        for c in grid:
            linear = fit_logistic(train_x, y, len(codes), c=c, max_iter=max_iter, init=previous, cancel=cancel)
            previous = linear
            entry: dict[str, Any] = {"c": c, "iterations": linear.iterations, "converged": linear.converged}
            if len(vy):
                logits = linear.logits(vx)
                top1, top5 = accuracy(logits, vy)
                entry.update(top1=round(top1, 4), top5=round(top5, 4), nll=round(_nll(softmax(logits), vy), 4))
                key = (top1, top5, -entry["nll"])
            else:
                key = (0.0, 0.0, 0.0)
            tried.append(entry)
            if best_key is None or key > best_key:
                best, best_key = (c, linear), key
        report.update(c=best[0], c_grid=tried)  # type: ignore[index]
        coder = EmbeddingCoder(mode="lr", codes=codes, embedder=embedder, linear=best[1])  # type: ignore[index]
    if len(vy):
        scores = coder.scores(vx)
        coder.temperature = fit_temperature(scores, vy)
        probs = softmax(scores / coder.temperature)
        top1, top5 = accuracy(probs, vy)
        report.update(temperature=round(coder.temperature, 5), val_top1=round(top1, 4), val_top5=round(top5, 4),
                      val_nll=round(_nll(probs, vy), 4))
    elif mode == "knn":
        coder.temperature = KNN_TEMPERATURE
        report["temperature"] = KNN_TEMPERATURE
    return coder, report


def embed_training_data(project: Project, embedder: EmbeddingModel, data: TrainingData, *,
                        stats: CacheStats | None = None, progress: ProgressCallback | None = None,
                        cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray]:
    texts = [t for t, _ in data.train] + [t for t, _ in data.validation]
    vectors = embed_cached(project, embedder, texts, stats=stats, progress=progress, cancel=cancel)
    return vectors[: len(data.train)], vectors[len(data.train):]


def validation_entry(coder: EmbeddingCoder, val_x: np.ndarray, validation: Sequence[tuple[str, str]]) -> dict | None:
    """Scores on the mix's validation texts, in the same form (and set key) as fastText's, so they compete."""
    if not validation:
        return None
    preds = coder.predict_vectors(val_x, 5)
    top1 = sum(bool(p) and p[0][0] == c for p, (_, c) in zip(preds, validation)) / len(validation)
    top5 = sum(c in {code for code, _ in p} for p, (_, c) in zip(preds, validation)) / len(validation)
    return {"set": _validation_key(validation), "n": len(validation), "top1": round(top1, 4), "top5": round(top5, 4)}


def register_model(project: Project, *, kind: str, name: str, path: Path, params: dict, data: dict,
                   train_s: float, validation: dict | None) -> tuple[int, str]:
    sha = file_sha256(path)
    with project.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO models (name, kind, path, sha256, params, data, train_s, validation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, kind, str(path.relative_to(project.path.parent)), sha, json.dumps(params), json.dumps(data),
             round(train_s, 3), json.dumps(validation) if validation else None))
        return int(cur.lastrowid), sha


def model_file(project: Project, prefix: str, suffix: str) -> Path:
    folder = models_folder(project)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{threading.get_ident() % 10_000}"
    return folder / f"{prefix}-{stamp}{suffix}"


def train_embedding_model(project: Project, mix: DataMix, options: EmbeddingTrainOptions | None = None, *,
                          progress: ProgressCallback | None = None,
                          cancel: CancelToken | None = None) -> EmbeddingTrainResult:
    """Build the mix (as fastText does), embed it through the project cache, fit, calibrate, store, register."""
    options = options or EmbeddingTrainOptions()
    start = time.perf_counter()
    data = build_training_data(project, mix)
    embedder = load_embedding_model(options.model_path, threads=options.threads)
    stats = CacheStats()
    train_x, val_x = embed_training_data(project, embedder, data, stats=stats,
                                         progress=_scaled(progress, 0.0, 0.8, "embedding"), cancel=cancel)
    embed_s = time.perf_counter() - start
    coder, report = fit_embedding_coder(embedder, train_x, [c for _, c in data.train], val_x,
                                        [c for _, c in data.validation], mode=options.mode,
                                        c_grid=options.c_grid, max_iter=options.max_iter, cancel=cancel)
    if progress is not None:
        progress(ProgressInfo(950, 1000, "saving"))
    path = model_file(project, f"embedding-{options.mode}", ".npz")
    coder.save(path)
    train_s = time.perf_counter() - start
    validation = validation_entry(coder, val_x, data.validation)
    params = {"mode": options.mode, "embedder": {"name": embedder.name, "sha256": embedder.sha256,
                                                 "dim": embedder.dim, "pooling": embedder.pooling},
              "c_grid": list(options.c_grid), "max_iter": options.max_iter, "fit": report}
    composition = {**data.composition, "per_code": dict(Counter(c for _, c in data.train)),
                   "embed_s": round(embed_s, 3), "cache": {"texts": stats.texts, "hits": stats.hits,
                                                           "embedded": stats.embedded}}
    name = options.name or f"embedding {options.mode} {time.strftime('%Y-%m-%d %H:%M')}"
    model_id, sha = register_model(project, kind="embedding", name=name, path=path, params=params,
                                   data=composition, train_s=train_s, validation=validation)
    if options.make_default:
        choose_default_model(project)
    if progress is not None:
        progress(ProgressInfo(1000, 1000, "trained"))
    return EmbeddingTrainResult(model_id=model_id, path=path, sha256=sha, train_s=train_s, params=params,
                                composition=composition, validation=validation, cache=stats, coder=coder)


def log_loss_of(preds: Sequence[Sequence[tuple[str, float]]], gold: Sequence[str]) -> float:
    total = 0.0
    for pred, code in zip(preds, gold):
        total -= math.log(max(dict(pred).get(code, 0.0), 1e-9))
    return total / max(1, len(gold))
