"""Train embedding coders on the same data mixes as fastText, calibrate them on validation, register them."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from engine.coders.base import TrainedModel
from engine.coders.data import DataMix, TrainingData, build_training_data, score_validation
from engine.coders.registry import register_trained, write_model_file
from engine.jobs import CancelToken, ProgressCallback, ProgressInfo, scaled_progress
from engine.store.project import Project
from engine.coders.embedding.cache import CacheStats, embed_cached
from engine.coders.embedding.classifier import accuracy, fit_logistic, fit_temperature, softmax
from engine.coders.embedding.coder import EmbeddingCoder
from engine.coders.embedding.model import EmbeddingModel, load_embedding_model

C_GRID = (10.0, 100.0, 1000.0)
DEFAULT_C = 100.0           # BENCHMARK.md's setting, used when there is nothing to validate on
KNN_TEMPERATURE = 0.05      # cosine gaps are small; used when there is nothing to calibrate on
# kNN prototypes (weights of the cosine to each code's centroid per source, added to the nearest reference's
# cosine) and the sources that count only through their centroid, never as nearest references. Chosen on the
# development half of all of NACE, zero real: nearest note line 53.1 %, + 0.5 x notes centroid + 0.25 x
# synthetic centroid 56.1 %; synthetic samples as nearest references 47.6 % (bench/results/knn-prototypes-dev-nace-full.md).
KNN_PROTOTYPES = {"notes": 0.5, "synthetic": 0.25}
PROTOTYPE_ONLY = ("synthetic",)


@dataclass
class EmbeddingTrainOptions:
    mode: str = "lr"                             # lr | knn
    c_grid: Sequence[float] = C_GRID             # chosen on validation (top-1, then log-loss)
    max_iter: int = 300
    name: str = ""
    prototypes: Mapping[str, float] = field(default_factory=lambda: dict(KNN_PROTOTYPES))   # knn only
    prototype_only: Sequence[str] = PROTOTYPE_ONLY                                           # knn only
    model_path: str | None = None                # a GGUF embedding model; None: the shipped MiniLM
    threads: int | None = None
    make_default: bool = True


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    return -float(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-30)).mean()) if len(y) else 0.0


def fit_embedding_coder(embedder: EmbeddingModel, train_x: np.ndarray, train_codes: Sequence[str],
                        val_x: np.ndarray, val_codes: Sequence[str], *, mode: str = "lr",
                        c_grid: Sequence[float] = C_GRID, max_iter: int = 300,
                        cancel: CancelToken | None = None, smoothing: float = 0.0,
                        siblings: dict[str, list[str]] | None = None, train_sources: Sequence[str] | None = None,
                        prototypes: Mapping[str, float] | None = None,
                        prototype_only: Sequence[str] = PROTOTYPE_ONLY) -> tuple[EmbeddingCoder, dict[str, Any]]:
    """Fit on the training vectors; choose C and the temperature on the validation vectors (never on test).

    `smoothing` > 0 with `siblings` (engine.coders.hierarchy): soft targets that give each text's
    siblings that share of its label (logistic mode only).
    """
    codes = sorted(set(train_codes))
    index = {c: i for i, c in enumerate(codes)}
    y = np.array([index[c] for c in train_codes], dtype=np.int64)
    soft = None
    if smoothing > 0 and siblings and mode != "knn":
        from engine.coders.hierarchy import soft_target_matrix
        soft = soft_target_matrix(list(train_codes), codes, siblings, smoothing)
    known = [i for i, c in enumerate(val_codes) if c in index]
    vx = val_x[known] if len(known) else np.zeros((0, train_x.shape[1]), np.float32)
    vy = np.array([index[val_codes[i]] for i in known], dtype=np.int64)
    report: dict[str, Any] = {"mode": mode, "classes": len(codes), "train": len(y), "validation": len(vy),
                              "hierarchy_smoothing": smoothing if soft is not None else 0.0}
    if mode == "knn":
        refs, ref_labels, protos, weights, used = knn_parameters(train_x, y, len(codes), train_sources, prototypes,
                                                                  prototype_only)
        report.update(prototypes=dict(zip(used, weights)), references=int(len(ref_labels)))
        coder = EmbeddingCoder(mode="knn", codes=codes, embedder=embedder, temperature=1.0, refs=refs,
                               ref_labels=ref_labels, protos=protos, proto_weights=weights, proto_sources=used)
    else:
        grid = sorted(c_grid) if len(vy) else [DEFAULT_C]
        best, best_key, tried, previous = None, None, [], None
        for c in grid:
            linear = fit_logistic(train_x, y, len(codes), c=c, max_iter=max_iter, init=previous, cancel=cancel,
                                  soft=soft)
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


def knn_parameters(train_x: np.ndarray, y: np.ndarray, n_classes: int, sources: Sequence[str] | None,
                   prototypes: Mapping[str, float] | None, prototype_only: Sequence[str] = PROTOTYPE_ONLY):
    """The nearest-neighbour references and the per-source centroids of a kNN coder.

    Texts of a PROTOTYPE_ONLY source (synthetic) are references only for codes that have no other text;
    otherwise they count through their code's centroid. Without sources every text is a reference.
    """
    x = train_x.astype(np.float32)
    if sources is None or len(sources) != len(y):
        return x, y, None, [], []
    src = np.asarray(sources)
    only = np.isin(src, list(prototype_only))
    covered = np.zeros(n_classes, dtype=bool)
    covered[y[~only]] = True
    keep = ~only | ~covered[y]
    protos, weights, used = [], [], []
    for source, weight in (prototypes or {}).items():
        members = src == source
        if weight <= 0 or not members.any():
            continue
        centroids = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
        np.add.at(centroids, y[members], x[members])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        protos.append(centroids)
        weights.append(float(weight))
        used.append(source)
    return x[keep], y[keep], (np.stack(protos) if protos else None), weights, used


def absorb_validation(coder: EmbeddingCoder, x: np.ndarray, codes: Sequence[str], sources: Sequence[str],
                      options: EmbeddingTrainOptions) -> None:
    """Rebuild a kNN coder's references and centroids from the training and validation texts together.

    The coder as it was is kept (`held_out()`), so whatever validates it later does not read texts it has seen.
    """
    coder.held = {"refs": coder.refs, "ref_labels": coder.ref_labels, "protos": coder.protos}
    index = {c: i for i, c in enumerate(coder.codes)}
    keep = [i for i, c in enumerate(codes) if c in index]
    y = np.array([index[codes[i]] for i in keep], dtype=np.int64)
    src = [sources[i] for i in keep] if len(sources) == len(codes) else None
    refs, labels, protos, weights, used = knn_parameters(x[keep], y, len(coder.codes), src, options.prototypes,
                                                         options.prototype_only)
    coder.refs, coder.ref_labels = refs, labels
    coder.protos, coder.proto_weights, coder.proto_sources = protos, weights, used


def embed_training_data(project: Project, embedder: EmbeddingModel, data: TrainingData, *,
                        stats: CacheStats | None = None, progress: ProgressCallback | None = None,
                        cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray]:
    texts = [t for t, _ in data.train] + [t for t, _ in data.validation]
    vectors = embed_cached(project, embedder, texts, stats=stats, progress=progress, cancel=cancel)
    return vectors[: len(data.train)], vectors[len(data.train):]


def train_embedding(project: Project, mix: DataMix, options: EmbeddingTrainOptions | None = None, *,
                    progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> TrainedModel:
    """Build the mix (as fastText does), embed it through the project cache, fit, calibrate, store, register."""
    options = options or EmbeddingTrainOptions()
    start = time.perf_counter()
    data = build_training_data(project, mix)
    embedder = load_embedding_model(options.model_path, threads=options.threads)
    stats = CacheStats()
    train_x, val_x = embed_training_data(project, embedder, data, stats=stats,
                                         progress=scaled_progress(progress, 0.0, 0.8, "embedding"), cancel=cancel)
    embed_s = time.perf_counter() - start
    coder, report = fit_embedding_coder(embedder, train_x, [c for _, c in data.train], val_x,
                                        [c for _, c in data.validation], mode=options.mode,
                                        c_grid=options.c_grid, max_iter=options.max_iter, cancel=cancel,
                                        smoothing=mix.hierarchy_smoothing, siblings=data.siblings,
                                        train_sources=data.sources, prototypes=options.prototypes,
                                        prototype_only=options.prototype_only)
    validation = score_validation(coder.predict_vectors(val_x, 5), data.validation)
    if options.mode == "knn" and data.composition.get("validation_from") == "training data" and len(val_x):
        # Without real texts the validation lines were carved from the training data (to fit the temperature);
        # once it is fitted and the validation scored, they join the references and centroids, so the coder
        # keeps every note line (10 % fewer note lines cost about 2 points on all of NACE).
        absorb_validation(coder, np.vstack([train_x, val_x]), [c for _, c in data.train] + [c for _, c in data.validation],
                          (data.sources or []) + (data.validation_sources or []), options)
        report["validation_joined_references"] = len(val_x)
    if progress is not None:
        progress(ProgressInfo(950, 1000, "saving"))
    path = write_model_file(project, f"embedding-{options.mode}", ".npz", coder.save, "embedding coder")
    train_s = time.perf_counter() - start
    params = {"mode": options.mode, "embedder": {"name": embedder.name, "sha256": embedder.sha256,
                                                 "dim": embedder.dim, "pooling": embedder.pooling},
              "c_grid": list(options.c_grid), "max_iter": options.max_iter, "fit": report,
              **({"prototypes": dict(options.prototypes), "prototype_only": list(options.prototype_only)}
                 if options.mode == "knn" else {})}
    composition = {**data.composition, "per_code": dict(Counter(c for _, c in data.train)),
                   "embed_s": round(embed_s, 3), "cache": {"texts": stats.texts, "hits": stats.hits,
                                                           "embedded": stats.embedded}}
    name = options.name or f"embedding {options.mode} {time.strftime('%Y-%m-%d %H:%M')}"
    trained = register_trained(project, kind="embedding", name=name, path=path, params=params,
                               composition=composition, train_s=train_s, validation=validation,
                               make_default=options.make_default)
    if progress is not None:
        progress(ProgressInfo(1000, 1000, "trained"))
    return trained
