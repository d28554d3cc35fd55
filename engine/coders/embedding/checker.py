"""The embedding label checker for curation: an embedding coder trained on the check's pairs ranks texts."""

from __future__ import annotations

from typing import Sequence

from engine.coders.embedding.model import load_embedding_model
from engine.coders.embedding.training import fit_embedding_coder


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
