"""Local LLMs: the GGUF model registry, memory estimates, and backends (in-process llama.cpp, HTTP server)."""

from engine.llm.backends import (Backend, BackendSettings, Completion, GenerationRequest, HardwareSettings, Prompt,
                       open_backend)
from engine.llm.registry import (ModelInfo, add_model, estimate_memory, get_default_model, get_model, inspect_model,
                       install_default_model, list_models, remove_model, set_default_model, test_model_path)

__all__ = [
    "Backend", "BackendSettings", "Completion", "GenerationRequest", "HardwareSettings", "ModelInfo", "Prompt",
    "add_model", "estimate_memory", "get_default_model", "get_model", "inspect_model", "install_default_model",
    "list_models", "open_backend", "remove_model", "set_default_model", "test_model_path",
]
