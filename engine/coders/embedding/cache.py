"""The project's embedding cache: each (text, model) pair is embedded once and read back afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.store.project import Project
from engine.coders.embedding.model import EmbeddingModel

LOOKUP_CHUNK = 500
WRITE_EVERY = 256


@dataclass
class CacheStats:
    texts: int = 0      # distinct texts asked for
    hits: int = 0       # found in the project
    embedded: int = 0   # computed now and stored

    def add(self, other: "CacheStats") -> None:
        self.texts += other.texts
        self.hits += other.hits
        self.embedded += other.embedded


def _lookup(project: Project, sha256: str, texts: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(texts), LOOKUP_CHUNK):
        chunk = texts[start:start + LOOKUP_CHUNK]
        rows = project.conn.execute(
            f"SELECT text, vector FROM embedding_cache WHERE model_sha256 = ? AND text IN ({','.join('?' * len(chunk))})",
            [sha256, *chunk])
        for text, blob in rows:
            found[text] = np.frombuffer(blob, dtype="<f4")
    return found


def _store(project: Project, sha256: str, items: list[tuple[str, np.ndarray]]) -> None:
    with project.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO embedding_cache (model_sha256, text, vector) VALUES (?, ?, ?)",
                         [(sha256, text, vec.astype("<f4").tobytes()) for text, vec in items])


def embed_cached(project: Project, model: EmbeddingModel, texts: Sequence[str], *,
                 stats: CacheStats | None = None, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> np.ndarray:
    """Vectors of `texts` (one row each, in order), embedding only those the project has not seen with this model.

    New vectors are written every few hundred texts, so a cancelled or crashed job keeps what it computed.
    """
    distinct = list(dict.fromkeys(texts))
    found = _lookup(project, model.sha256, distinct)
    missing = [t for t in distinct if t not in found]
    run = CacheStats(texts=len(distinct), hits=len(distinct) - len(missing))
    meter = ProgressMeter(len(missing), progress)
    pending: list[tuple[str, np.ndarray]] = []
    for i, text in enumerate(missing):
        if cancel is not None and i % 32 == 0:
            cancel.check()
        vector = model.embed_one(text)
        found[text] = vector
        pending.append((text, vector))
        run.embedded += 1
        if len(pending) >= WRITE_EVERY:
            _store(project, model.sha256, pending)
            pending = []
        meter.update(i + 1, "embedding texts")
    if pending:
        _store(project, model.sha256, pending)
    if missing:
        meter.update(len(missing), "embedded", force=True)
    if stats is not None:
        stats.add(run)
    out = np.empty((len(texts), model.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i] = found[text]
    return out


def cache_size(project: Project, sha256: str | None = None) -> int:
    if sha256 is None:
        return project.conn.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0]
    return project.conn.execute("SELECT COUNT(*) FROM embedding_cache WHERE model_sha256 = ?", (sha256,)).fetchone()[0]


def clear_cache(project: Project, sha256: str | None = None) -> int:
    """Drop cached vectors (of one model, or all); returns how many rows went."""
    with project.transaction() as conn:
        if sha256 is None:
            return conn.execute("DELETE FROM embedding_cache").rowcount
        return conn.execute("DELETE FROM embedding_cache WHERE model_sha256 = ?", (sha256,)).rowcount
