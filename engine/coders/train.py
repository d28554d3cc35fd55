"""Train a coder of any kind on a data mix: the one entry point the CLI, the GUI and the pipeline call."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from engine.coders.base import TrainedModel
from engine.coders.data import DataMix
from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding
from engine.coders.ensemble import train_ensemble
from engine.coders.fasttext.training import TrainOptions, train_fasttext
from engine.coders.lexical import LexicalOptions, train_lexical
from engine.errors import TrainingError
from engine.jobs import CancelToken, ProgressCallback, scaled_progress
from engine.store.project import Project

# 'knn' is the embedding coder in nearest-neighbour mode (semantic search over the training texts);
# 'lexical' scores BM25 between a text and each code's pooled training lines (engine.coders.lexical).
KINDS = ("fasttext", "embedding", "knn", "lexical", "ensemble")


def train_coder(project: Project, mix: DataMix, *, kind: str, name: str = "", make_default: bool = True,
                fasttext: TrainOptions | None = None, embedding: EmbeddingTrainOptions | None = None,
                lexical: LexicalOptions | None = None, members: Sequence[int] | None = None, combination: str = "log",
                weights: Sequence[float] | None = None, heads: float | None = None,
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> TrainedModel:
    """Train and register one coder. An ensemble without `members` trains its members first: fastText, the
    embedding regression and (for 'log', the default) the kNN and the lexical coder.

    `combination`, `weights` and `heads` are the ensemble's (engine.coders.ensemble): weights None are chosen
    on validation, or are the zero-real defaults when the mix has no real text; heads None follows the
    classification (engine.coders.heads).
    """
    if kind not in KINDS:
        raise TrainingError(f"unknown coder kind '{kind}'; choose one of {', '.join(KINDS)}")
    # each kind's options, named by `name` where given, defaulting as asked
    ft, emb, lex = (dataclasses.replace(options, name=name or options.name, make_default=make_default)
                    for options in (fasttext or TrainOptions(), embedding or EmbeddingTrainOptions(),
                                    lexical or LexicalOptions()))
    if kind == "fasttext":
        return train_fasttext(project, mix, ft, progress=progress, cancel=cancel)
    if kind == "lexical":
        return train_lexical(project, mix, lex, progress=progress, cancel=cancel)
    if kind in ("embedding", "knn"):
        if kind == "knn":
            emb = dataclasses.replace(emb, mode="knn")
        return train_embedding(project, mix, emb, progress=progress, cancel=cancel)
    if members is None:
        first = train_fasttext(project, mix, dataclasses.replace(ft, make_default=False, name=ft.name and f"{ft.name} (fastText)"),
                               progress=scaled_progress(progress, 0.0, 0.4, "fastText"), cancel=cancel)
        second = train_embedding(project, mix, dataclasses.replace(emb, make_default=False,
                                                                   name=emb.name and f"{emb.name} (embeddings)"),
                                 progress=scaled_progress(progress, 0.4, 0.85, "embeddings"), cancel=cancel)
        members = [first.model_id, second.model_id]
        if combination == "log":
            third = train_embedding(project, mix, dataclasses.replace(emb, mode="knn", make_default=False,
                                                                      name=emb.name and f"{emb.name} (kNN)"),
                                    progress=scaled_progress(progress, 0.85, 0.9, "kNN"), cancel=cancel)
            fourth = train_lexical(project, mix, dataclasses.replace(lex, make_default=False,
                                                                     name=lex.name and f"{lex.name} (lexical)"),
                                   progress=scaled_progress(progress, 0.9, 0.92, "lexical"), cancel=cancel)
            # the order of ZERO_REAL_MEMBERS: knn, embedding, fasttext, lexical
            members = [third.model_id, second.model_id, first.model_id, fourth.model_id]
    return train_ensemble(project, mix, members=members, name=name, make_default=make_default, cancel=cancel,
                          combination=combination, weights=weights, heads=heads)
