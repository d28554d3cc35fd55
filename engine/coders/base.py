"""The coder interface every trained model kind implements, its loader registry, and the project's default model."""

from __future__ import annotations

import json
from importlib import import_module
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from engine.errors import ModelError
from engine.coders.fasttext.model import FastTextCoder
from engine.store.project import Project

DEFAULT_MODEL_SETTING = "default_model_id"


@runtime_checkable
class Coder(Protocol):
    """A trained classifier over codes. fastText, embedding and ensemble coders all look like this."""

    kind: str
    codes: list[str]

    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely codes with probabilities, best first."""
        ...

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        ...

    @classmethod
    def load(cls, path: str | Path) -> "Coder":
        ...


class FastTextKindCoder(FastTextCoder):
    """The fastText coder under the Coder interface."""

    kind = "fasttext"


# kind -> loader(path) -> Coder. Other coder modules add their kinds here when imported
# (engine.coders.embedding registers 'embedding' and 'ensemble').
CODER_LOADERS: dict[str, Callable[[Path], Coder]] = {"fasttext": FastTextKindCoder.load}


@dataclass(frozen=True)
class ModelRecord:
    """One row of the `models` table, with its file resolved against the project's folder."""

    id: int
    name: str
    kind: str
    path: Path
    sha256: str
    params: dict[str, Any]
    data: dict[str, Any]
    train_s: float | None
    validation: dict[str, Any] | None
    created: str


def models_folder(project: Project) -> Path:
    """`<project>.models/` beside the project file: copying both moves a project with its models."""
    return project.path.parent / f"{project.path.stem}.models"


def _record(project: Project, row: tuple) -> ModelRecord:
    path = Path(row[3])
    if not path.is_absolute():
        path = project.path.parent / path
    return ModelRecord(id=row[0], name=row[1], kind=row[2], path=path, sha256=row[4],
                       params=json.loads(row[5] or "{}"), data=json.loads(row[6] or "{}"), train_s=row[7],
                       validation=json.loads(row[8]) if row[8] else None, created=row[9])


_MODEL_COLUMNS = "id, name, kind, path, sha256, params, data, train_s, validation, created"


def get_model(project: Project, model_id: int) -> ModelRecord:
    row = project.conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE id = ?", (model_id,)).fetchone()
    if row is None:
        raise ModelError(f"model {model_id} is not registered in this project")
    return _record(project, row)


def list_models(project: Project) -> list[ModelRecord]:
    return [_record(project, r) for r in project.conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY id")]


def default_model_id(project: Project) -> int | None:
    """The model that serves suggestions: the `default_model_id` setting, else the newest model."""
    chosen = project.get_setting(DEFAULT_MODEL_SETTING)
    if chosen is not None and project.conn.execute("SELECT 1 FROM models WHERE id = ?", (chosen,)).fetchone():
        return int(chosen)
    row = project.conn.execute("SELECT MAX(id) FROM models").fetchone()
    return row[0]


def set_default_model(project: Project, model_id: int) -> None:
    get_model(project, model_id)
    project.set_setting(DEFAULT_MODEL_SETTING, model_id)


def validation_score(record: ModelRecord) -> float | None:
    return (record.validation or {}).get("top1")


def choose_default_model(project: Project) -> int | None:
    """Make the model with the best validation top-1 the default (on the same validation set); returns it.

    Models validated on different sets are not comparable, so only those sharing the newest model's
    validation set key compete; a model without validation scores never displaces one with them.
    """
    models = [m for m in list_models(project) if validation_score(m) is not None]
    if not models:
        return default_model_id(project)
    key = models[-1].validation.get("set")  # type: ignore[union-attr]
    rivals = [m for m in models if m.validation.get("set") == key]  # type: ignore[union-attr]
    best = max(rivals, key=lambda m: (validation_score(m), m.id))
    set_default_model(project, best.id)
    return best.id


# Modules that add coder kinds to CODER_LOADERS when imported; loaded on first need, so that a caller
# of suggest() does not have to know which module serves which kind.
PLUGIN_MODULES = ("engine.coders.embedding",)


def _register_plugins() -> None:
    import importlib

    for name in PLUGIN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


_cache: dict[tuple[str, str], Coder] = {}
_cache_lock = threading.Lock()
MAX_CACHED = 4


def load_coder(project: Project, model_id: int | None = None) -> tuple[Coder, ModelRecord]:
    """The loaded coder for a model (the project's default if None), cached by file and hash."""
    if model_id is None:
        model_id = default_model_id(project)
        if model_id is None:
            raise ModelError("this project has no trained model yet; train one first")
    record = get_model(project, model_id)
    key = (str(record.path), record.sha256)
    with _cache_lock:
        coder = _cache.get(key)
    if coder is not None:
        return coder, record
    if record.kind not in CODER_LOADERS:
        import_module("engine.coders.embedding")  # registers the 'embedding' and 'ensemble' kinds
    loader = CODER_LOADERS.get(record.kind)
    if loader is None:
        _register_plugins()
        loader = CODER_LOADERS.get(record.kind)
    if loader is None:
        raise ModelError(f"model {model_id} is of kind '{record.kind}', which this statcoder cannot load")
    if not record.path.exists():
        raise ModelError(f"the file of model {model_id} is missing: {record.path}")
    try:
        coder = loader(record.path)
    except ModelError:
        raise
    except Exception as exc:  # the bindings raise ValueError/RuntimeError on a corrupt file
        raise ModelError(f"model {model_id} could not be loaded from {record.path}: {exc}") from exc
    with _cache_lock:
        if len(_cache) >= MAX_CACHED:
            _cache.pop(next(iter(_cache)))
        _cache[key] = coder
    return coder, record


def clear_coder_cache() -> None:
    with _cache_lock:
        _cache.clear()
