"""`statcoder check`: is a project file whole? SQLite's integrity check, orphan rows, model files.

A damaged page does not announce itself: counts still print and searches return what they can
read. This check reads every page (or, `quick`, skips the slower index cross-checks), lists rows
whose references point nowhere, and compares each registered model file with the size and sha256
stored when it was trained. It only reads.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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


def _models_folder(project: Project) -> Path:
    return project.path.parent / f"{project.path.stem}.models"


ModelVerifier = Callable[[Project], list[str]]


def check_models(project: Project, *, verify: ModelVerifier | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes) about the registered model files.

    `verify` is the coder registry's verification (size and sha256, inside the models folder), which
    the caller passes in: the store sits below the coders and does not import them. Without it, only
    the presence of each file is checked (the GUI's quick check on every open). Notes list files in
    the models folder that no model row names."""
    problems: list[str] = []
    notes: list[str] = []
    folder = _models_folder(project).resolve()
    registered: set[Path] = set()
    for model_id, path_text in project.conn.execute("SELECT id, path FROM models ORDER BY id"):
        path = Path(path_text)
        path = (path if path.is_absolute() else project.path.parent / path).resolve()
        registered.add(path)
        if verify is None and not path.is_file():
            problems.append(f"model {model_id}: its file is missing ({path})")
    if verify is not None:
        problems += [str(p) for p in verify(project)]
    if folder.is_dir():
        stray = [p for p in folder.iterdir() if p.resolve() not in registered and not any(
            r.is_relative_to(p.resolve()) for r in registered)]
        if stray:
            notes.append(f"{len(stray)} file(s) in {folder} belong to no registered model (left by an "
                         "interrupted training? the next fastText training removes those): "
                         + ", ".join(p.name for p in stray[:10]))
    return problems, notes


def check_project(project: Project, *, quick: bool = False, verify_models: ModelVerifier | None = None) -> CheckReport:
    """Check the file's structure, its references and its model files; reads only.

    `quick`: SQLite's quick_check instead of integrity_check. `verify_models`: the coder registry's
    file verification (without it, model files are checked for presence only)."""
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
        report.models, report.notes = check_models(project, verify=verify_models)
    except sqlite3.DatabaseError as exc:
        report.integrity.append(str(exc))
    return report
