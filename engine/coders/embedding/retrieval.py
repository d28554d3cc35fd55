"""SynthesizRR's retrieval step: for each code, the real texts nearest to its notes, as style examples.

Divekar and Durrett (2024) make synthetic data more realistic by showing the generator documents
retrieved from a real corpus. Here the corpus is the project's uncoded texts and its real-train texts
(never the test split: a test text shown to the generator could come back as a training sample);
their codes are never read, so a retrieved text is a style example, not a labelled one. A text ranks
by its highest cosine similarity (MiniLM sentence embeddings) to any note line of the code.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from engine.classification.note_lines import notes_pairs
from engine.coders.embedding.cache import embed_cached
from engine.coders.embedding.model import load_embedding_model
from engine.errors import StatcoderError
from engine.store.project import Project

SOURCES = ("train", "uncoded")


def retrieval_pool(project: Project, sources: Iterable[str] = SOURCES) -> list[str]:
    """The texts retrieval may show: real-train texts and/or uncoded texts, deduplicated, never test texts."""
    sources = list(sources)
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise StatcoderError(f"unknown retrieval source(s) {', '.join(sorted(unknown))}; choose from "
                             f"{', '.join(SOURCES)}")
    texts: list[str] = []
    if "train" in sources:
        # split = 'train' by name: a text of the test half must never reach a prompt.
        texts += [r[0] for r in project.conn.execute("SELECT text FROM real_texts WHERE split = 'train' ORDER BY id")]
    if "uncoded" in sources:
        texts += [r[0] for r in project.conn.execute("SELECT text FROM uncoded_texts ORDER BY id")]
    return list(dict.fromkeys(texts))


def style_examples(project: Project, *, codes: Sequence[str], top: int = 12, sources: Iterable[str] = SOURCES,
                   embedder=None) -> dict[str, list[str]]:
    """Code -> the `top` pool texts nearest to the code's note lines, nearest first."""
    pool = retrieval_pool(project, sources)
    if not pool:
        raise StatcoderError("retrieval needs real-train or uncoded texts in the project; import some first")
    embedder = embedder or load_embedding_model(None)
    lines = list(notes_pairs(project, codes))
    vectors = embed_cached(project, embedder, pool + [t for t, _ in lines])
    pool_x, line_x = vectors[: len(pool)], vectors[len(pool):]
    out: dict[str, list[str]] = {}
    for code in codes:
        rows = [i for i, (_, c) in enumerate(lines) if c == code]
        if not rows:
            continue
        sims = (pool_x @ line_x[rows].T).max(axis=1)
        order = np.argsort(-sims, kind="stable")[:top]
        out[code] = [pool[i] for i in order]
    return out
