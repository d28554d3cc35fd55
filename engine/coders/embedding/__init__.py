"""Sentence embeddings (GGUF via llama.cpp), their project cache, and the embedding and ensemble coders.

Importing this package registers the 'embedding' and 'ensemble' kinds with engine.coders.base.
"""

from __future__ import annotations

from typing import Sequence

from engine.coders.base import CODER_LOADERS
from engine.coders.embedding.cache import CacheStats, cache_size, clear_cache, embed_cached
from engine.coders.embedding.classifier import fit_logistic, fit_temperature, nearest_scores
from engine.coders.embedding.coder import EmbeddingCoder
from engine.coders.ensemble import EnsembleCoder, train_ensemble
from engine.coders.embedding.model import (DEFAULT_MODEL_SHA256, EmbeddingModel, default_model_path, load_embedding_model,
                    resolve_embedding_model)
from engine.coders.embedding.training import EmbeddingTrainOptions, EmbeddingTrainResult, fit_embedding_coder, train_embedding_model

CODER_LOADERS["embedding"] = EmbeddingCoder.load
CODER_LOADERS["ensemble"] = EnsembleCoder.load


def embedding_checker(*, mode: str = "lr", k: int = 10, model_path: str | None = None):
    """A curation label checker (engine.curate.labelcheck.Checker): train an embedding coder, rank the texts.

    BENCHMARK.md found the notes-trained embedding classifier a good judge of synthetic labels.
    """
    def check(train_pairs: Sequence[tuple[str, str]], texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        embedder = load_embedding_model(model_path)
        train_x = embedder.embed([t for t, _ in train_pairs])
        empty = train_x[:0]
        coder, _ = fit_embedding_coder(embedder, train_x, [c for _, c in train_pairs], empty, [], mode=mode)
        return coder.predict_many(list(texts), k)
    check.__name__ = f"embedding-{mode}"
    return check


__all__ = [
    "CacheStats", "DEFAULT_MODEL_SHA256", "EmbeddingCoder", "EmbeddingModel", "EmbeddingTrainOptions",
    "EmbeddingTrainResult", "EnsembleCoder", "cache_size", "clear_cache", "default_model_path", "embed_cached",
    "embedding_checker", "fit_embedding_coder", "fit_logistic", "fit_temperature", "load_embedding_model",
    "nearest_scores", "resolve_embedding_model", "train_embedding_model", "train_ensemble",
]
