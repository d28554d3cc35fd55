"""The project's trained coders: the only code that names model files and writes the `models` table.

It also loads coders (by kind, through a table of dotted paths resolved on first use, so no kind is
imported until a model of that kind is opened), verifies a model file before trusting it, decides which
model serves suggestions, and removes files that killed or failed trainings left behind.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.childproc import pid_alive
from engine.coders.base import Coder, TrainedModel
from engine.errors import ModelError, TrainingError
from engine.store.project import Project
from engine.text import file_sha256

DEFAULT_MODEL_SETTING = "default_model_id"

# kind -> "module:attribute" of a loader(path) -> Coder. Resolved on first use (simonw/llm's plugin table).
LOADERS: dict[str, str] = {
    "fasttext": "engine.coders.fasttext.model:FastTextCoder.load",
    "embedding": "engine.coders.embedding.coder:EmbeddingCoder.load",
    "ensemble": "engine.coders.ensemble:EnsembleCoder.load",
    "lexical": "engine.coders.lexical:LexicalCoder.load",
}
# A new model whose validation top-1 is below this share of the serving model's is not made the
# default on its own: a collapsed model (a truncated file, a broken mix) must never serve silently.
COLLAPSE_SHARE = 0.5


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

    @property
    def codes_trained(self) -> int | None:
        return self.data.get("codes_trained")


def models_folder(project: Project) -> Path:
    """`<project>.models/` beside the project file: copying both moves a project with its models."""
    return project.path.parent / f"{project.path.stem}.models"


_name_lock = threading.Lock()
_last_stamp_us = 0


def model_file(project: Project, prefix: str, suffix: str) -> Path:
    """A new file name in the models folder; the pid in it lets `clean_orphans` tell a live training."""
    folder = models_folder(project)
    folder.mkdir(parents=True, exist_ok=True)
    owner = f"-{os.getpid()}-{threading.get_ident() % 10_000}"
    # Two models of one kind in the same second (a quick retrain) must not share a file: the name carries
    # microseconds, strictly increasing within this process (the pid in the name separates processes).
    global _last_stamp_us
    with _name_lock:
        now_us = max(int(time.time() * 1e6), _last_stamp_us + 1)
        _last_stamp_us = now_us
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now_us / 1e6)) + f"{now_us % 1_000_000:06d}"
    return folder / f"{prefix}-{stamp}{owner}{suffix}"


def scratch_prefix() -> str:
    """The prefix of a training's scratch folder in the models folder (holds training text while it runs)."""
    return f"statcoder-train-{os.getpid()}-"


def loader_for(kind: str) -> Callable[[Path], Coder]:
    spec = LOADERS.get(kind)
    if spec is None:
        raise ModelError(f"models of kind '{kind}' cannot be loaded by this statcoder")
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


_MODEL_COLUMNS = "id, name, kind, path, sha256, params, data, train_s, validation, created"


def _record(project: Project, row: tuple) -> ModelRecord:
    path = Path(row[3])
    if not path.is_absolute():
        path = project.path.parent / path
    return ModelRecord(id=row[0], name=row[1], kind=row[2], path=path, sha256=row[4],
                       params=json.loads(row[5] or "{}"), data=json.loads(row[6] or "{}"), train_s=row[7],
                       validation=json.loads(row[8]) if row[8] else None, created=row[9])


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


def collapse_warning(project: Project, record: ModelRecord) -> str | None:
    """Why `record` must not silently replace the serving model, or None when it may compete."""
    current = default_model_id(project)
    if current is None or current == record.id:
        return None
    serving = get_model(project, current)
    new, old = validation_score(record), validation_score(serving)
    if new is None or old is None or new >= COLLAPSE_SHARE * old:
        return None
    return (f"model {record.id} validated at {new:.1%} top-1, far below the serving model {serving.id} "
            f"({old:.1%}); it was not made the default. Check the training data and the disk, "
            f"or choose it by hand if this is intended.")


def register_model(project: Project, *, kind: str, name: str, path: Path, params: dict, data: dict,
                   train_s: float, validation: dict | None, make_default: bool) -> tuple[ModelRecord, bool, list[str]]:
    """Record a verified model file; optionally let the best on validation serve. Returns (record, default?, warnings)."""
    folder = models_folder(project).resolve()
    if folder not in path.resolve().parents:
        raise ModelError(f"{path} is not in this project's models folder {folder}")
    if not path.is_file() or path.stat().st_size == 0:
        raise ModelError(f"the model file {path} is missing or empty; nothing was registered")
    sha = file_sha256(path)
    data = {**data, "file_bytes": path.stat().st_size}
    with project.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO models (name, kind, path, sha256, params, data, train_s, validation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, kind, str(path.relative_to(project.path.parent)), sha, json.dumps(params), json.dumps(data),
             round(train_s, 3), json.dumps(validation) if validation else None))
        model_id = int(cur.lastrowid)
    _verified[_file_key(path)] = sha
    record = get_model(project, model_id)
    warnings: list[str] = []
    made_default = False
    if make_default:
        warning = collapse_warning(project, record)
        if warning:
            warnings.append(warning)
        else:
            made_default = choose_default_model(project) == model_id
    return record, made_default, warnings


def write_model_file(project: Project, prefix: str, suffix: str, save: Callable[[Path], None], what: str) -> Path:
    """A new file in the models folder written by `save`; a failed write leaves nothing behind and is one
    TrainingError that names the folder."""
    path = model_file(project, prefix, suffix)
    try:
        save(path)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise TrainingError(f"the {what} could not be written to {path.parent}: {exc.strerror or exc}") from exc
    return path


def register_trained(project: Project, *, kind: str, name: str, path: Path, params: dict, composition: dict,
                     train_s: float, validation: dict | None, make_default: bool) -> TrainedModel:
    """register_model for a trainer that just wrote `path`: the file is removed if it cannot be registered
    (nothing half-made stays behind), and what the trainer returns is built here."""
    try:
        record, made_default, warnings = register_model(
            project, kind=kind, name=name, path=path, params=params, data=composition, train_s=train_s,
            validation=validation, make_default=make_default)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return TrainedModel(model_id=record.id, kind=kind, name=name, path=path, sha256=record.sha256, train_s=train_s,
                        params=params, composition=composition, validation=validation, made_default=made_default,
                        warnings=warnings)


# (path, size, mtime_ns) -> sha256: a file is hashed once per change, not at every load.
_verified: dict[tuple[str, int, int], str] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def verify_file(path: Path, sha256: str, *, what: str) -> None:
    """Refuse a file that is missing or differs from the sha256 recorded when it was written."""
    if not path.is_file():
        raise ModelError(f"the file of {what} is missing: {path}")
    key = _file_key(path)
    actual = _verified.get(key)
    if actual is None:
        actual = file_sha256(path)
        _verified[key] = actual
    if actual != sha256:
        raise ModelError(f"the file of {what} has changed since it was trained (sha256 mismatch): {path}. "
                         "It may be truncated or replaced; retrain the model.")


def verify_record(project: Project, record: ModelRecord) -> None:
    """The file is the project's own (inside its models folder) and is the file that was trained."""
    folder = models_folder(project).resolve()
    if folder not in record.path.resolve().parents:
        raise ModelError(f"model {record.id}'s file {record.path} is outside this project's models folder {folder}; "
                         "statcoder only loads models the project trained")
    verify_file(record.path, record.sha256, what=f"model {record.id}")


def _check_codes(project: Project, record: ModelRecord, coder: Coder) -> None:
    known = {c for (c,) in project.conn.execute("SELECT code FROM codes")}
    foreign = [c for c in coder.codes if c not in known]
    if foreign:
        raise ModelError(f"model {record.id} predicts {len(foreign)} code(s) this classification does not have "
                         f"(e.g. '{foreign[0]}'): it was trained for another classification")


_cache: dict[tuple[str, str, str], Coder] = {}
_cache_lock = threading.Lock()
MAX_CACHED = 4


def load_coder(project: Project, model_id: int | None = None) -> tuple[Coder, ModelRecord]:
    """The loaded, verified coder for a model (the project's default if None), cached by file and hash."""
    if model_id is None:
        model_id = default_model_id(project)
        if model_id is None:
            raise ModelError("this project has no trained model yet; train one first")
    record = get_model(project, model_id)
    verify_record(project, record)
    key = (record.kind, str(record.path), record.sha256)
    with _cache_lock:
        coder = _cache.get(key)
    if coder is not None:
        return coder, record
    loader = loader_for(record.kind)
    try:
        coder = loader(record.path)
    except ModelError:
        raise
    except Exception as exc:  # the bindings raise ValueError/RuntimeError on a corrupt file
        raise ModelError(f"model {model_id} could not be loaded from {record.path}: {exc}") from exc
    _check_codes(project, record, coder)
    with _cache_lock:
        if len(_cache) >= MAX_CACHED:
            _cache.pop(next(iter(_cache)))
        _cache[key] = coder
    return coder, record


def clear_coder_cache() -> None:
    with _cache_lock:
        _cache.clear()


def verify_models(project: Project) -> list[str]:
    """Every registered model's problem (missing, changed or foreign file), for `statcoder check`."""
    problems = []
    for record in list_models(project):
        try:
            verify_record(project, record)
        except ModelError as exc:
            problems.append(str(exc))
    return problems


_OWNER = re.compile(r"-(\d+)-\d+\.[A-Za-z0-9.]+$")
_SCRATCH = re.compile(r"^statcoder-train-(\d+)-")


def clean_orphans(project: Project) -> list[Path]:
    """Remove what killed or failed trainings left in the models folder; returns what was removed.

    Only files no model row names, whose writing process (the pid in the name) no longer runs here,
    are removed, so a training running in another process is never disturbed.
    """
    folder = models_folder(project)
    if not folder.is_dir():
        return []
    registered = {r.path.resolve() for r in list_models(project)}
    removed = []
    for entry in folder.iterdir():
        scratch = _SCRATCH.match(entry.name)
        owner = _OWNER.search(entry.name.removesuffix(".tmp"))
        if scratch and entry.is_dir() and not pid_alive(int(scratch.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif owner and entry.is_file() and entry.resolve() not in registered and not pid_alive(int(owner.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
