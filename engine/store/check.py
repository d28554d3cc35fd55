"""`statcoder check`: is a project file whole? SQLite's integrity check, orphan rows, model files.

A damaged page does not announce itself: counts still print and searches return what they can
read. This check reads every page (or, `quick`, skips the slower index cross-checks), lists rows
whose references point nowhere, and compares each registered model file with the size and sha256
stored when it was trained. It only reads.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from engine.store.project import Project

MAX_LISTED = 50


@dataclass
class CheckReport:
    path: str
    integrity: list[str] = field(default_factory=list)     # SQLite's messages; empty when the file is whole
    orphans: list[str] = field(default_factory=list)       # rows whose references point nowhere
    models: list[str] = field(default_factory=list)        # missing or changed model files
    notes: list[str] = field(default_factory=list)         # not damage, worth knowing
    quick: bool = False

    @property
    def ok(self) -> bool:
        return not (self.integrity or self.orphans or self.models)

    @property
    def problems(self) -> list[str]:
        return self.integrity + self.orphans + self.models

    def lines(self) -> list[str]:
        kind = "quick check" if self.quick else "check"
        if self.ok:
            out = [f"{self.path}: {kind} passed (file structure, references, model files)"]
        else:
            out = [f"{self.path}: {len(self.problems)} problem(s) found"]
            out += [f"  integrity: {m}" for m in self.integrity]
            out += [f"  orphan: {m}" for m in self.orphans]
            out += [f"  model: {m}" for m in self.models]
        out += [f"  note: {m}" for m in self.notes]
        return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _models_folder(project: Project) -> Path:
    return project.path.parent / f"{project.path.stem}.models"


def check_models(project: Project, *, hashes: bool = True) -> tuple[list[str], list[str]]:
    """(problems, notes) about the registered model files: missing, changed (`hashes`), outside the
    project; notes list files in the models folder that no model row names."""
    try:  # the coder registry's own verification (size + sha256, the file inside the models folder)
        from engine.coders.registry import verify_models
    except ImportError:
        verify_models = None
    problems: list[str] = []
    notes: list[str] = []
    folder = _models_folder(project).resolve()
    registered: set[Path] = set()
    for model_id, path_text, sha in project.conn.execute("SELECT id, path, sha256 FROM models ORDER BY id"):
        path = Path(path_text)
        path = (path if path.is_absolute() else project.path.parent / path).resolve()
        registered.add(path)
        if verify_models is not None and hashes:
            continue   # the registry's check below covers this model
        if not path.is_file():
            problems.append(f"model {model_id}: its file is missing ({path})")
            continue
        if not path.is_relative_to(folder):
            notes.append(f"model {model_id}: its file is outside the project's models folder ({path})")
        if hashes and _sha256(path) != sha:
            problems.append(f"model {model_id}: its file changed since it was trained (sha256 differs): {path}")
    if verify_models is not None and hashes:
        problems += [str(p) for p in verify_models(project)]
    if folder.is_dir():
        stray = [p for p in folder.iterdir() if p.resolve() not in registered and not any(
            r.is_relative_to(p.resolve()) for r in registered)]
        if stray:
            notes.append(f"{len(stray)} file(s) in {folder} belong to no registered model (left by an "
                         "interrupted training? the next fastText training removes those): "
                         + ", ".join(p.name for p in stray[:10]))
    return problems, notes


def check_project(project: Project, *, quick: bool = False) -> CheckReport:
    """Check the file's structure, its references and its model files; reads only.

    `quick`: SQLite's quick_check, and model files checked for presence, not hashed (the GUI runs it
    on every open)."""
    report = CheckReport(str(project.path), quick=quick)
    conn = project.conn
    try:
        rows = conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check").fetchall()
        messages = [r[0] for r in rows]
        if messages != ["ok"]:
            report.integrity = messages[:MAX_LISTED]
    except sqlite3.DatabaseError as exc:
        report.integrity = [str(exc)]
        return report
    try:
        orphans: dict[tuple[str, str], int] = {}
        for table, _rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check"):
            orphans[(table, parent)] = orphans.get((table, parent), 0) + 1
        report.orphans = [f"{n} row(s) of {table} refer to missing rows of {parent}"
                          for (table, parent), n in sorted(orphans.items())]
    except sqlite3.DatabaseError as exc:
        report.integrity.append(str(exc))
        return report
    try:
        report.models, report.notes = check_models(project, hashes=not quick)
    except sqlite3.DatabaseError as exc:
        report.integrity.append(str(exc))
    return report
