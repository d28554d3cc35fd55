"""The embedding coder: a sentence-embedding model plus logistic regression ('lr') or nearest neighbour ('knn')."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.coders.base import CoderBase
from engine.errors import ModelError
from engine.coders.embedding.classifier import LinearModel, NearestIndex, softmax, top_k
from engine.coders.embedding.model import EmbeddingModel, resolve_embedding_model

MODES = ("lr", "knn")
FORMAT = "statcoder-embedding-coder/1"


class EmbeddingCoder(CoderBase):
    """Implements the Coder protocol (engine.coders.base). Probabilities are softmax(scores / temperature)."""

    kind = "embedding"

    def __init__(self, *, mode: str, codes: list[str], embedder: EmbeddingModel, temperature: float = 1.0,
                 linear: LinearModel | None = None, refs: np.ndarray | None = None,
                 ref_labels: np.ndarray | None = None, protos: np.ndarray | None = None,
                 proto_weights: Sequence[float] = (), proto_sources: Sequence[str] = ()):
        if mode not in MODES:
            raise ModelError(f"unknown embedding coder mode '{mode}'; choose one of {', '.join(MODES)}")
        if mode == "lr" and linear is None or mode == "knn" and (refs is None or ref_labels is None):
            raise ModelError(f"an embedding coder in mode '{mode}' is missing its parameters")
        self.mode, self.codes, self.embedder = mode, list(codes), embedder
        self.temperature = float(temperature)
        self.linear, self.refs, self.ref_labels = linear, refs, ref_labels
        # kNN prototypes: per source, each code's centroid (unit length; zero where the source has no text of
        # the code). A code's score is its nearest reference's cosine plus weight x cosine to each centroid.
        self.protos = protos if protos is not None and len(proto_weights) else None
        # the references grouped by code, built on first use for the arrays it was built from
        self._nearest: tuple[np.ndarray, np.ndarray, NearestIndex] | None = None
        self.proto_weights = [float(w) for w in proto_weights] if self.protos is not None else []
        self.proto_sources = list(proto_sources) if self.protos is not None else []
        # A zero-real kNN joins its validation lines to its references after scoring them; the coder as it
        # was before (refs, ref_labels, protos) is kept so that an ensemble can validate it honestly.
        self.held: dict[str, np.ndarray | None] | None = None

    def held_out(self) -> "EmbeddingCoder":
        """This coder without the validation lines it absorbed (itself when it absorbed none)."""
        if self.held is None:
            return self
        return EmbeddingCoder(mode=self.mode, codes=self.codes, embedder=self.embedder, temperature=self.temperature,
                              refs=self.held["refs"], ref_labels=self.held["ref_labels"], protos=self.held["protos"],
                              proto_weights=self.proto_weights, proto_sources=self.proto_sources)

    # scoring -----------------------------------------------------------------------------------
    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Uncalibrated scores per code: logits (lr) or nearest-neighbour cosine (knn)."""
        vectors = np.atleast_2d(vectors).astype(np.float32, copy=False)
        if self.mode == "lr":
            return self.linear.logits(vectors)  # type: ignore[union-attr]
        scores = self.nearest_index().scores(vectors)
        for weight, centroids in zip(self.proto_weights, self.protos if self.protos is not None else ()):
            scores += weight * (vectors @ centroids.T)
        return scores

    def nearest_index(self) -> NearestIndex:
        """The kNN references grouped by code; rebuilt when refs or ref_labels are replaced (absorb_validation)."""
        cached = self._nearest
        if cached is None or cached[0] is not self.refs or cached[1] is not self.ref_labels:
            index = NearestIndex(self.refs, self.ref_labels, len(self.codes))  # type: ignore[arg-type]
            self._nearest = cached = (self.refs, self.ref_labels, index)  # type: ignore[assignment]
        return cached[2]

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(self.scores(vectors) / self.temperature)

    def predict_vectors(self, vectors: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        if len(vectors) == 0:
            return []
        return top_k(self.probabilities(vectors), self.codes, k)

    # the Coder protocol (predict has a one-text fast path) --------------------------------------------------------------------------
    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        return self.predict_vectors(self.embedder.embed_one(text)[None, :], k)[0]

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        if not texts:
            return []
        return self.predict_vectors(self.embedder.embed(list(texts)), k)

    # files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """One .npz file; written to a temporary name and renamed, so a crash leaves no half file."""
        path = Path(path)
        header = {"format": FORMAT, "mode": self.mode, "codes": self.codes, "temperature": self.temperature,
                  "embedder": {"name": self.embedder.name, "sha256": self.embedder.sha256,
                               "path": str(self.embedder.path), "dim": self.embedder.dim}}
        arrays: dict[str, np.ndarray] = {}
        if self.mode == "lr":
            arrays.update(weights=self.linear.weights, bias=self.linear.bias)  # type: ignore[union-attr]
        else:
            arrays.update(refs=self.refs.astype(np.float32), ref_labels=self.ref_labels.astype(np.int32))  # type: ignore[union-attr]
            if self.protos is not None:
                arrays["protos"] = self.protos.astype(np.float32)
                header.update(proto_weights=self.proto_weights, proto_sources=self.proto_sources)
            if self.held is not None:
                arrays.update(held_refs=self.held["refs"].astype(np.float32),  # type: ignore[union-attr]
                              held_ref_labels=self.held["ref_labels"].astype(np.int32))  # type: ignore[union-attr]
                if self.held["protos"] is not None:
                    arrays["held_protos"] = self.held["protos"].astype(np.float32)  # type: ignore[union-attr]
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "EmbeddingCoder":
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                arrays = {name: data[name] for name in data.files if name != "header"}
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path} is not an embedding coder file ({exc})") from exc
        if header.get("format") != FORMAT:
            raise ModelError(f"{path} is an embedding coder of an unknown format ({header.get('format')})")
        spec = header["embedder"]
        embedder = resolve_embedding_model(spec["sha256"], spec.get("path"))
        if header["mode"] == "lr":
            return cls(mode="lr", codes=header["codes"], embedder=embedder, temperature=header["temperature"],
                       linear=LinearModel(arrays["weights"], arrays["bias"]))
        coder = cls(mode="knn", codes=header["codes"], embedder=embedder, temperature=header["temperature"],
                    refs=arrays["refs"], ref_labels=arrays["ref_labels"].astype(np.int64),
                    protos=arrays.get("protos"), proto_weights=header.get("proto_weights", ()),
                    proto_sources=header.get("proto_sources", ()))
        if "held_refs" in arrays:
            coder.held = {"refs": arrays["held_refs"], "ref_labels": arrays["held_ref_labels"].astype(np.int64),
                          "protos": arrays.get("held_protos")}
        return coder
