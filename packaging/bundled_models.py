"""First start of a bundle built with `--model`: register the GGUF files it carries, so generation can start at once.

The files stay inside the installed bundle (`_internal/models/`); the registry records their path
and sha256. A file already registered at that path is skipped, so later starts cost one small
JSON read. If the bundle is reinstalled elsewhere, the file is registered again under its new path.
"""

from __future__ import annotations

from pathlib import Path


def register_bundled_models(folder: Path) -> list[str]:
    """Register every *.gguf in `folder` not yet known at its path; returns the names registered now."""
    from engine.llm.registry import add_model, list_models

    known = {Path(model.path).resolve() for model in list_models()}
    added: list[str] = []
    for gguf in sorted(folder.glob("*.gguf")):
        if gguf.resolve() not in known:
            added.append(add_model(gguf).name)
    return added
