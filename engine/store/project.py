"""The project file: one SQLite database per project, opened with WAL, foreign keys and migrations."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from engine import __version__
from engine.errors import ProjectError, SchemaTooNewError
from engine.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15_000
# SQLite's application id ("STCD"), written in the file header of every project statcoder creates, so
# that another program's database is never mistaken for a project (and never migrated).
APPLICATION_ID = 0x53544344
# The first migration: its record identifies a project made before the application id existed.
FIRST_MIGRATION = "m001_classification"


def describe_db_error(exc: BaseException, path: Path | str | None = None) -> str | None:
    """A user-facing line for an SQLite error that is about the file, not a bug; None for others."""
    text = str(exc).lower()
    where = f" ({path})" if path else ""
    if "readonly" in text or "read-only" in text:
        return f"the project is read-only{where}: open a copy in a folder you can write to, or change its permissions"
    if "disk is full" in text or "database or disk is full" in text:
        return f"the disk is full{where}: nothing was saved by this step; free some space and try again"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return (f"the project file is damaged{where} ({exc}); run `statcoder check` and restore the file "
                "from a backup")
    if "locked" in text or "busy" in text:
        return f"the project is busy{where}: another program is writing to it; try again in a moment"
    if "unable to open" in text:
        return f"cannot open the project{where} ({exc})"
    if "disk i/o error" in text:
        return f"the disk failed while using the project{where} ({exc})"
    return None


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    # Each connection is used by the one thread that opened it (Project.conn is per thread); the check
    # is off only so that Project.close_all() can close the connections of other threads.
    if read_only:
        # A WAL database needs its -shm file; where none exists and none can be made (a read-only
        # folder), `immutable` reads the file as it is. Nothing can write there meanwhile anyway.
        shm = path.with_name(path.name + "-shm")
        immutable = not os.access(path.parent, os.W_OK) and not shm.exists()
        uri = path.as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _is_writable(path: Path) -> bool:
    """Whether statcoder may write the project: the file and (for WAL's side files) its folder."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def identify(path: Path) -> str:
    """What a file is, read without changing a byte of it: 'empty', 'statcoder' or 'foreign'.

    'empty': nothing in it yet (a zero-byte file, or an SQLite file with no tables): it may become a
    project. 'statcoder': it carries statcoder's application id, or (a project from before the id)
    statcoder's migration record. Anything else is 'foreign' and must not be touched.
    """
    wal = path.with_name(path.name + "-wal")
    wal_pages = wal.exists() and wal.stat().st_size > 0
    if path.stat().st_size == 0:
        if not wal_pages:
            return "empty"
    else:
        with open(path, "rb") as handle:
            head = handle.read(100)
        if not head.startswith(b"SQLite format 3\x00"):
            return "foreign"
    shm = path.with_name(path.name + "-shm")
    # Read-only and, where the side files are absent, immutable: the probe creates no -wal or -shm.
    immutable = not shm.exists() and not wal.exists()
    uri = path.as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
    probe = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        app_id = probe.execute("PRAGMA application_id").fetchone()[0]
        if app_id == APPLICATION_ID:
            return "statcoder"
        if app_id != 0:
            return "foreign"
        tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return "empty"
        if "_migrations" in tables and probe.execute(
                "SELECT 1 FROM _migrations WHERE name = ?", (FIRST_MIGRATION,)).fetchone():
            return "statcoder"
        return "foreign"
    finally:
        probe.close()


def _apply_migrations(conn: sqlite3.Connection, path: Path) -> list[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL, app_version TEXT)"
    )
    applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    _check_not_too_new(applied, path)
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
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        done.append(name)
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")   # a project from before the id
    return done


def _check_not_too_new(applied: set[str], path: Path) -> None:
    known = {name for name, _ in MIGRATIONS}
    unknown = sorted(applied - known)
    if unknown:
        raise SchemaTooNewError(
            f"{path} was written by a newer statcoder (schema step {unknown[-1]} is unknown to "
            f"statcoder {__version__}); upgrade statcoder to open it"
        )


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open. After SQLITE_FULL or an I/O error SQLite may have rolled
    back already, and a second ROLLBACK ('no transaction is active') would hide the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _as_project_error(exc: sqlite3.DatabaseError, path: Path) -> BaseException:
    """The SQLite error as a ProjectError when it is about the file (full, read-only, damaged, busy);
    integrity errors and other SQL errors are the caller's to handle and pass through unchanged."""
    message = describe_db_error(exc, path)
    return ProjectError(message) if message else exc


class _Connection:
    """A thread's connection and its sqlite_utils view, held by the thread's local storage.

    The project keeps only a weak reference to it: when a thread ends, its local storage goes and the
    connection is closed with it; `close_all` reaches the ones still alive."""

    __slots__ = ("conn", "db", "generation", "owner", "__weakref__")

    def __init__(self, conn: sqlite3.Connection, generation: int) -> None:
        self.conn = conn
        self.db: sqlite_utils.Database | None = None
        self.generation = generation
        self.owner = threading.current_thread()


class Project:
    """An open project file. Connections are per thread; each thread gets its own on first use.

    `close()` closes the calling thread's connection (a worker does it when its job ends); `close_all()`,
    when the project itself is closed, closes the calling thread's and those of threads that have ended,
    and retires the rest: a thread still running closes its own at its next use (closing a connection
    another thread is using would crash the interpreter), so no file handle outlives its use.

    Only an empty file or a statcoder project is ever opened (and migrated); another program's
    database is refused without a byte changed. A project that cannot be written (a read-only file
    or folder) opens read-only: reads work, and writes fail with "the project is read-only".
    """

    SUFFIX = ".statcoder"

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path).expanduser().resolve()
        if not create and not self.path.exists():
            raise ProjectError(f"project file not found: {self.path}")
        if create and self.path.exists():
            raise ProjectError(f"a file already exists at {self.path}; choose another name")
        if self.path.is_dir():
            raise ProjectError(f"{self.path} is a folder, not a statcoder project file")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._generation = 0
        self.read_only = False
        if not create:
            try:
                kind = identify(self.path)
            except sqlite3.DatabaseError as exc:
                raise ProjectError(f"{self.path} is not a statcoder project file ({exc})") from exc
            except OSError as exc:
                raise ProjectError(f"cannot read {self.path} ({exc.strerror or exc})") from exc
            if kind == "foreign":
                raise ProjectError(f"{self.path} is not a statcoder project file: it is another kind of file or "
                                   "another program's database (it was left as it is)")
            self.read_only = not _is_writable(self.path)
            if self.read_only and kind == "empty":
                raise ProjectError(f"{self.path} is empty and read-only: it cannot become a project")
        try:
            conn = self.conn
            if self.read_only:
                self._check_read_only_schema(conn)
            else:
                _apply_migrations(conn, self.path)
        except sqlite3.DatabaseError as exc:
            self.close()
            message = describe_db_error(exc, self.path)
            raise ProjectError(message or f"{self.path} is not a statcoder project file ({exc})") from exc
        except BaseException:
            self.close()
            raise

    def _check_read_only_schema(self, conn: sqlite3.Connection) -> None:
        applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        _check_not_too_new(applied, self.path)
        missing = [name for name, _ in MIGRATIONS if name not in applied]
        if missing:
            raise ProjectError(f"{self.path} is read-only and was made by an older statcoder: it needs an "
                               "upgrade that cannot be written; open it once where it can be written")

    @classmethod
    def create(cls, path: str | Path) -> "Project":
        return cls(path, create=True)

    @classmethod
    def open(cls, path: str | Path) -> "Project":
        return cls(path)

    def _held(self) -> _Connection:
        held: _Connection | None = getattr(self._local, "held", None)
        if held is not None and held.generation != self._generation:
            held.conn.close()       # retired by close_all while this thread was busy or idle: closed here
            held = None
        if held is None:
            held = _Connection(_connect(self.path, read_only=self.read_only), self._generation)
            self._local.held = held
            with self._lock:
                self._open.add(held)
        return held

    @property
    def conn(self) -> sqlite3.Connection:
        return self._held().conn

    @property
    def db(self) -> sqlite_utils.Database:
        held = self._held()
        if held.db is None:
            held.db = sqlite_utils.Database(held.conn)
        return held.db

    @property
    def open_connections(self) -> int:
        """How many threads hold a connection to this project now (for leak tests and diagnostics)."""
        with self._lock:
            return len(self._open)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; it takes the write lock at once so it cannot deadlock midway."""
        conn = self.conn
        if self.read_only:
            raise ProjectError(describe_db_error(sqlite3.OperationalError("readonly"), self.path))
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise _as_project_error(exc, self.path) from exc
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            raise _as_project_error(exc, self.path) from exc
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            raise _as_project_error(exc, self.path) from exc

    def close(self) -> None:
        """Close the calling thread's connection (the next use in this thread opens a new one)."""
        held: _Connection | None = getattr(self._local, "held", None)
        if held is not None:
            with self._lock:
                self._open.discard(held)
            held.conn.close()
            self._local.held = None

    def close_all(self) -> None:
        """The project is closed: close this thread's connection and those of threads that have ended;
        a thread still running closes its own at its next use of the project (never from here: closing
        a connection while its thread runs a query crashes SQLite's Python module)."""
        me = threading.current_thread()
        with self._lock:
            helds = list(self._open)
            self._generation += 1   # a thread still holding an older one closes it and reconnects
            closable = [h for h in helds if h.owner is me or not h.owner.is_alive()]
            for held in closable:
                self._open.discard(held)
        for held in closable:
            held.conn.close()
        self._local.held = None

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()

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
        try:
            return self._summary()
        except sqlite3.DatabaseError as exc:
            raise _as_project_error(exc, self.path) from exc

    def _summary(self) -> dict[str, Any]:
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
