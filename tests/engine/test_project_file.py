"""Issue 12: the project file. Another program's database is never migrated; a read-only project
reads and refuses writes in one line; a full disk shows the real error; damage is found by
`statcoder check` and reported in one line by the commands that meet it."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engine.errors import ProjectError
from engine.store.project import Project
from tests.conftest import REPO
from tests.engine.reliability_support import file_hash, project_hashes, register_fake_model, run_cli


def _foreign_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);"
                       "INSERT INTO invoices (total) VALUES (12.5), (99.0);")
    conn.close()
    return path


def test_another_programs_database_is_refused_byte_identical(tmp_path, capsys):
    other = _foreign_db(tmp_path / "accounts.db")
    before = file_hash(other)
    for args in (("info", "-p", other), ("codes", "search", "-p", other, "bread"),
                 ("classification", "import", "-p", other, "--builtin", "nace2")):
        code, _, err = run_cli(capsys, *args)
        assert code == 1 and "not a statcoder project" in err, (args, err)
    with pytest.raises(ProjectError, match="not a statcoder project"):
        Project.open(other)
    assert file_hash(other) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.db"]   # no -wal, no -shm
    conn = sqlite3.connect(other)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["invoices"]


def test_a_file_that_is_not_sqlite_is_refused_byte_identical(tmp_path, capsys):
    junk = tmp_path / "notes.statcoder"
    junk.write_bytes(b"just some text, not a database\n" * 100)
    before = file_hash(junk)
    code, _, err = run_cli(capsys, "info", "-p", junk)
    assert code == 1 and "not a statcoder project" in err and file_hash(junk) == before


def test_projects_get_an_application_id_and_old_ones_still_open(tmp_path):
    from engine.store.project import APPLICATION_ID

    path = tmp_path / "p.statcoder"
    Project.create(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.execute("PRAGMA application_id = 0")     # as written before the id existed
    conn.close()
    with Project.open(path) as project:
        assert project.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    empty = tmp_path / "empty.statcoder"
    empty.touch()
    with Project.open(empty) as project:          # an empty file may become a project
        assert project.schema_version() > 0


# read-only ---------------------------------------------------------------------------------------

def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path):
    """make(path, what): a copy of a project whose file or folder is read-only for this process.

    As a normal user, permissions do it. Root ignores permissions, so as root the folder becomes a
    read-only mount (a tmpfs remounted read-only; skipped where mounting is not allowed)."""
    mounts: list[Path] = []
    chmodded: list[Path] = []

    def make(source: Path, what: str) -> Path:
        folder = tmp_path / f"ro-{what}"
        folder.mkdir()
        if os.geteuid() != 0:
            path = folder / source.name
            shutil.copy(source, path)
            path.chmod(0o444)
            chmodded.append(path)
            if what == "folder":
                folder.chmod(0o555)
                chmodded.append(folder)
            return path
        if what == "file":   # the file alone: bound onto itself, read-only
            path = folder / source.name
            shutil.copy(source, path)
            if not _mount("--bind", str(path), str(path)):
                pytest.skip("as root, a read-only project needs a read-only mount")
            mounts.append(path)
            if not _mount("-o", "remount,ro,bind", str(path)):
                pytest.skip("cannot remount read-only")
            return path
        if not _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)):
            pytest.skip("as root, a read-only project needs a read-only mount")
        mounts.append(folder)
        path = folder / source.name
        shutil.copy(source, path)
        if not _mount("-o", "remount,ro", str(folder)):
            pytest.skip("cannot remount read-only")
        return path

    yield make
    for path in chmodded:
        path.chmod(0o777 if path.is_dir() else 0o666)
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)   # lazy: a connection may linger


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_project_reads_and_refuses_writes_in_one_line(_nace_template, read_only, capsys, what):
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    path = read_only(_nace_template, what)
    before = file_hash(path)
    code, out, err = run_cli(capsys, "info", "-p", path, "--json")
    assert code == 0 and '"codes": 996' in out, err
    code, out, err = run_cli(capsys, "codes", "search", "-p", path, "bread", "--leaves")
    assert code == 0 and "10.71" in out, err
    code, _, err = run_cli(capsys, "code", "decide", "-p", path, "baking bread", "10.71")
    assert code == 1 and "the project is read-only" in err and "Traceback" not in err
    # A training is refused before it starts: it used to train, then fail to register, each try
    # leaving a model file behind.
    code, _, err = run_cli(capsys, "train", "run", "-p", path, "--real", "1", "--subset", "10")
    assert code == 1 and "the project is read-only" in err
    assert not (path.parent / f"{path.stem}.models").exists()
    assert file_hash(path) == before


# disk full ---------------------------------------------------------------------------------------

def test_a_full_disk_during_import_shows_the_real_error(tmp_path, capsys, monkeypatch):
    import engine.store.project as store

    path = tmp_path / "full.statcoder"
    assert run_cli(capsys, "new", path)[0] == 0
    connect = store._connect

    def small_disk(p, **kwargs):
        conn = connect(p, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 20}")   # room for ~80 KB more: NACE needs more
        return conn

    monkeypatch.setattr(store, "_connect", small_disk)
    code, _, err = run_cli(capsys, "classification", "import", "-p", path, "--builtin", "nace2")
    assert code == 1 and "the disk is full" in err, err
    assert "cannot rollback" not in err and "Traceback" not in err
    monkeypatch.undo()
    with Project.open(path) as project:
        assert project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()[0] == 0
        assert project.conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0


def test_a_rollback_sqlite_already_did_does_not_hide_the_error(project):
    with pytest.raises(ProjectError, match="the disk is full"):
        with project.transaction() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
            conn.execute("ROLLBACK")    # what SQLite does itself on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")
    assert project.get_setting("a") is None


# damage and `statcoder check` ------------------------------------------------------------------

def test_check_finds_damage_orphans_and_changed_models(nace_project, monkeypatch, capsys):
    register_fake_model(nace_project, monkeypatch)
    path = nace_project.path
    code, out, _ = run_cli(capsys, "check", "-p", path)
    assert code == 0 and "check passed" in out

    model = path.parent / f"{path.stem}.models" / "fake.json"
    model.write_text(model.read_text() + " ")
    nace_project.conn.execute("PRAGMA foreign_keys = OFF")
    nace_project.conn.execute("INSERT INTO real_texts (text, text_key, code, split, source) "
                              "VALUES ('x', 'x', '99.99', 'train', 'import')")
    code, out, _ = run_cli(capsys, "check", "-p", path)
    assert code == 1 and "model 1" in out and "changed" in out and "real_texts refer to missing rows of codes" in out


def _damage(path: Path) -> None:
    """Overwrite pages in the middle of the file, as a failing disk would."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        for offset in range(size // 3, size // 3 + 40 * 4096, 4096):
            handle.seek(offset)
            handle.write(os.urandom(4096))


def test_a_damaged_project_is_reported_not_a_traceback(_nace_template, tmp_path, capsys):
    path = tmp_path / "damaged.statcoder"
    shutil.copy(_nace_template, path)
    _damage(path)
    code, out, err = run_cli(capsys, "check", "-p", path)
    assert code == 1 and "Traceback" not in err
    assert "problem" in out or "damaged" in err
    for args in (("code", "decide", "-p", path, "baking bread", "10.71"),
                 ("real", "import", "-p", path, "--preset", "uksic-index"),
                 ("codes", "search", "-p", path, "bread")):
        try:
            code, _, err = run_cli(capsys, *args)
        except Exception as exc:  # noqa: BLE001 - the point: nothing may escape as a traceback
            pytest.fail(f"{args}: {exc!r}")
        assert code in (0, 1) and "Traceback" not in err
        if code == 1:
            assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
