"""Sentence-embedding models in GGUF, run by llama-cpp-python: the shipped MiniLM or any model an office brings."""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.errors import ModelError
from engine.paths import assets_dir
from engine.text import file_sha256

DEFAULT_MODEL_FILE = "all-MiniLM-L6-v2.f16.gguf"
DEFAULT_MODEL_SHA256 = "e9efbb64a5c4f2c1a5310f7d03fc864cdf28a67bb63ec94f0677100c5025fbc2"
# sentence-transformers truncates all-MiniLM-L6-v2 inputs at 256 tokens; coded texts are far shorter.
MAX_TOKENS = 256


def default_threads() -> int:
    """Short texts gain little from threads, and a busy machine makes thread barriers stall: use few."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def default_model_path() -> Path:
    return assets_dir() / "models" / DEFAULT_MODEL_FILE


@dataclass(frozen=True)
class EmbeddingModelInfo:
    name: str
    path: str
    sha256: str
    dim: int
    pooling: str


_POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


class EmbeddingModel:
    """One GGUF embedding model. Each text is embedded alone, so its vector never depends on its neighbours."""

    def __init__(self, path: str | Path, *, threads: int | None = None, sha256: str | None = None,
                 max_tokens: int = MAX_TOKENS):
        from llama_cpp import Llama

        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise ModelError(f"embedding model file not found: {self.path}")
        self.sha256 = sha256 or file_sha256(self.path)
        threads = threads or default_threads()
        try:
            self._llm = Llama(str(self.path), embedding=True, n_ctx=max_tokens, n_batch=max_tokens,
                              n_ubatch=max_tokens, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=0, verbose=False)
        except Exception as exc:  # llama.cpp raises ValueError for any file it cannot load
            raise ModelError(f"{self.path.name} could not be loaded as a GGUF model: {exc}") from exc
        meta = self._llm.metadata
        arch = meta.get("general.architecture", "")
        pooling = meta.get(f"{arch}.pooling_type")
        if pooling is None or int(pooling) == 0:
            self._llm.close()
            raise ModelError(f"{self.path.name} is not a sentence-embedding model: its GGUF metadata declares "
                             "no pooling type (a generation model cannot embed sentences)")
        self.pooling = _POOLING_NAMES.get(int(pooling), str(pooling))
        self.name = meta.get("general.name") or self.path.stem
        self.dim = int(self._llm.n_embd())
        self._lock = threading.Lock()

    @property
    def info(self) -> EmbeddingModelInfo:
        return EmbeddingModelInfo(self.name, str(self.path), self.sha256, self.dim, self.pooling)

    def embed_one(self, text: str) -> np.ndarray:
        """The L2-normalised float32 vector of one text."""
        with self._lock:  # one llama context: one decode at a time
            vector = np.asarray(self._llm.embed(text if text.strip() else " ", normalize=False, truncate=True),
                                dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed_one(text)
        return out

    def close(self) -> None:
        self._llm.close()


_loaded: dict[tuple[str, int], EmbeddingModel] = {}
_loaded_lock = threading.Lock()


@atexit.register
def _close_loaded() -> None:
    """Free llama.cpp models before interpreter shutdown tears down the bindings they need to free themselves."""
    with _loaded_lock:
        for model in _loaded.values():
            model.close()
        _loaded.clear()


def load_embedding_model(path: str | Path | None = None, *, threads: int | None = None) -> EmbeddingModel:
    """The model at `path` (the shipped MiniLM if None), loaded once per process and thread count."""
    resolved = Path(path).expanduser().resolve() if path else default_model_path()
    key = (str(resolved), threads or default_threads())
    with _loaded_lock:
        model = _loaded.get(key)
        if model is None:
            known = DEFAULT_MODEL_SHA256 if resolved.name == DEFAULT_MODEL_FILE and path is None else None
            model = _loaded[key] = EmbeddingModel(resolved, threads=threads, sha256=known)
        return model


def resolve_embedding_model(sha256: str, hint_path: str | None) -> EmbeddingModel:
    """Find the embedding model a coder was trained with, by its hash: the shipped one or the file it names."""
    if sha256 == DEFAULT_MODEL_SHA256:
        return load_embedding_model()
    if hint_path and Path(hint_path).is_file():
        model = load_embedding_model(hint_path)
        if model.sha256 == sha256:
            return model
        raise ModelError(f"the embedding model at {hint_path} has changed (sha256 {model.sha256[:12]}..., "
                         f"expected {sha256[:12]}...); retrain the coder or restore the file")
    raise ModelError(f"the embedding model this coder was trained with is missing ({hint_path or 'no path'}, "
                     f"sha256 {sha256[:12]}...)")
