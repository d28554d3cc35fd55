"""The project file: migrations, schema guard, WAL, foreign keys, settings."""

from __future__ import annotations

import sqlite3

import pytest

from engine.errors import ProjectError, SchemaTooNewError
from engine.store.migrations import MIGRATIONS
from engine.store.project import Project


def test_new_project_has_every_migration_and_stage_table(project):
    applied = [r[0] for r in project.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert applied == [name for name, _ in MIGRATIONS]
    assert project.schema_version() == len(MIGRATIONS)
    tables = set(project.db.table_names())
    for table in ("codes", "code_links", "real_texts", "generation_runs", "samples", "sample_flags",
                  "curation_runs", "models", "evaluations", "corrections", "imports"):
        assert table in tables


def test_wal_and_foreign_keys_are_on(project):
    assert project.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert project.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        with project.transaction() as conn:
            conn.execute("INSERT INTO real_texts (text, text_key, code, split, source) "
                         "VALUES ('x', 'x', 'NOPE', 'train', 'import')")


def test_reopening_applies_nothing_twice(tmp_path):
    path = tmp_path / "p.statcoder"
    Project.create(path).close()
    with Project.open(path) as again:
        assert again.conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_newer_schema_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "p.statcoder"
    with Project.create(path) as proj:
        proj.conn.execute("INSERT INTO _migrations (name, applied) VALUES ('m999_from_the_future', 'x')")
    with pytest.raises(SchemaTooNewError, match="newer statcoder.*m999_from_the_future"):
        Project.open(path)


def test_missing_and_non_sqlite_files_are_refused(tmp_path):
    with pytest.raises(ProjectError, match="not found"):
        Project.open(tmp_path / "nope.statcoder")
    junk = tmp_path / "junk.statcoder"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ProjectError, match="not a statcoder project file"):
        Project.open(junk)
    existing = tmp_path / "exists.statcoder"
    existing.write_text("x")
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(existing)


def test_settings_round_trip_json(project):
    project.set_setting("grid", {"length": ["short", "long"], "n": 3})
    assert project.get_setting("grid") == {"length": ["short", "long"], "n": 3}
    assert project.get_setting("missing", 7) == 7


def test_failed_transaction_rolls_back(project):
    with pytest.raises(RuntimeError):
        with project.transaction() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
            raise RuntimeError("boom")
    assert project.get_setting("a") is None


def test_decisions_of_an_older_file_survive_the_uncodable_migration(tmp_path, monkeypatch):
    """m095 rebuilds the corrections table; the rows of a file written before it are kept."""
    import engine.store.migrations as migrations
    import engine.store.project as project_module
    from engine.assist.coding import record_uncodable

    path = tmp_path / "old.statcoder"
    older = [(n, f) for n, f in MIGRATIONS if n != "m095_uncodable_decisions"]
    monkeypatch.setattr(project_module, "MIGRATIONS", older)
    with Project.create(path) as old:
        with old.transaction() as conn:
            conn.execute("INSERT INTO codes (code, parent, level, title, is_leaf, ord) VALUES ('A', NULL, 1, 'a', 1, 1)")
            conn.execute("INSERT INTO corrections (text, suggested_code, chosen_code, kind) VALUES ('t', 'A', 'A', 'confirmation')")
    monkeypatch.setattr(project_module, "MIGRATIONS", migrations.MIGRATIONS)
    with Project.open(path) as new:
        assert new.conn.execute("SELECT text, chosen_code, kind FROM corrections").fetchall() == [("t", "A", "confirmation")]
        record_uncodable(new, "no idea")
        assert new.conn.execute("SELECT chosen_code, kind FROM corrections WHERE text = 'no idea'").fetchall() == [
            (None, "uncodable")]
