"""The project file: one SQLite database per project, opened with WAL, foreign keys and migrations."""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from engine import __version__
from engine.errors import ProjectError, SchemaTooNewError
from engine.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15_000


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _apply_migrations(conn: sqlite3.Connection, path: Path) -> list[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL, app_version TEXT)"
    )
    applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    known = {name for name, _ in MIGRATIONS}
    unknown = sorted(applied - known)
    if unknown:
        raise SchemaTooNewError(
            f"{path} was written by a newer statcoder (schema step {unknown[-1]} is unknown to "
            f"statcoder {__version__}); upgrade statcoder to open it"
        )
    done: list[str] = []
    for name, fn in MIGRATIONS:
        if name in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied, app_version) VALUES (?, strftime('%Y-%m-%dT%H:%M:%SZ','now'), ?)",
                (name, __version__),
            )
            conn.execute(f"PRAGMA user_version = {len(applied) + len(done) + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done


class Project:
    """An open project file. Connections are per thread; each thread gets its own on first use."""

    SUFFIX = ".statcoder"

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path).expanduser().resolve()
        if not create and not self.path.exists():
            raise ProjectError(f"project file not found: {self.path}")
        if create and self.path.exists():
            raise ProjectError(f"a file already exists at {self.path}; choose another name")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            conn = self.conn
            _apply_migrations(conn, self.path)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ProjectError(f"{self.path} is not a statcoder project file ({exc})") from exc

    @classmethod
    def create(cls, path: str | Path) -> "Project":
        return cls(path, create=True)

    @classmethod
    def open(cls, path: str | Path) -> "Project":
        return cls(path)

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self.conn)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; it takes the write lock at once so it cannot deadlock midway."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            self._local.db = None

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # settings -------------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # at a glance ----------------------------------------------------------------------------
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def summary(self) -> dict[str, Any]:
        """Counts of what the project holds, for the CLI `info` and the GUI project page."""
        count = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "path": str(self.path),
            "size_bytes": self.path.stat().st_size,
            "schema_version": self.schema_version(),
            "classification": self.get_setting("classification"),
            "codes": count("SELECT COUNT(*) FROM codes"),
            "leaf_codes": count("SELECT COUNT(*) FROM codes WHERE is_leaf"),
            "links": count("SELECT COUNT(*) FROM code_links"),
            "real_train": count("SELECT COUNT(*) FROM real_texts WHERE split = 'train'"),
            "real_test": count("SELECT COUNT(*) FROM real_texts WHERE split = 'test'"),
            "generation_runs": count("SELECT COUNT(*) FROM generation_runs"),
            "samples": count("SELECT COUNT(*) FROM samples"),
            "accepted_samples": count("SELECT COUNT(*) FROM samples WHERE status = 'accepted'"),
            "models": count("SELECT COUNT(*) FROM models"),
            "evaluations": count("SELECT COUNT(*) FROM evaluations"),
            "corrections": count("SELECT COUNT(*) FROM corrections"),
        }

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
