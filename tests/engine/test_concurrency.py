"""Two processes on one project file at once (the GUI writing while a CLI batch job runs): nothing is locked out.

A writer process commits samples and real texts one short transaction at a time, as generation
does, while the CLI, in other processes, imports coded texts and reads the project. The project
opens with a busy timeout and writes with BEGIN IMMEDIATE, so each waits its turn: no command may
fail with "database is locked", and every row each side wrote is there at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from engine.store.project import Project
from tests.conftest import REPO

WRITER = r"""
import json, sqlite3, sys, time
from pathlib import Path
from engine.store.project import Project
from engine.text import normalise_key

path, stop, minimum = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
project = Project.open(path)
with project.transaction() as conn:
    run_id = conn.execute(
        "INSERT INTO generation_runs (name, strategies, codes, quota, seed, params)"
        " VALUES ('writer', '[]', '[]', 0, 0, '{}')"
    ).lastrowid
commits = 0
try:
    while commits < minimum or not stop.exists():
        text = f"writer text {commits}"
        with project.transaction() as conn:
            conn.execute(
                "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash,"
                " seed, model_sha256, backend, params)"
                " VALUES (?, '01.11', ?, ?, 'test', 'u', 'v1', 'h', 0, 'x', 'test', '{}')",
                (run_id, text, normalise_key(text)))
            conn.execute("INSERT INTO real_texts (text, text_key, code, split, source)"
                         " VALUES (?, ?, '01.12', 'train', 'writer')", (text, normalise_key(text)))
        commits += 1
        project.conn.execute("SELECT COUNT(*) FROM samples").fetchone()
        time.sleep(0.002)
except sqlite3.OperationalError as exc:
    print(f"writer failed after {commits} commits: {exc}", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"commits": commits}))
"""

CLI_ROUNDS = 6
TEXTS_PER_FILE = 40


def test_writer_and_cli_share_a_project_without_lock_errors(nace_project, tmp_path):
    path = str(nace_project.path)
    before = nace_project.summary()
    nace_project.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, str(stop), "50"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures: list[str] = []
    imported = 0
    try:
        for round_no in range(CLI_ROUNDS):
            batch = tmp_path / f"batch{round_no}.csv"
            batch.write_text("text,code\n" + "".join(f"cli batch {round_no} text {i},01.13\n"
                                                     for i in range(TEXTS_PER_FILE)), encoding="utf-8")
            for args in (["real", "import", "-p", path, str(batch), "--text-column", "text", "--code-column", "code"],
                         ["info", "-p", path, "--json"],
                         ["codes", "search", "-p", path, "bread"]):
                done = subprocess.run([sys.executable, "-m", "engine", *args], env=env, cwd=REPO,
                                      capture_output=True, text=True, timeout=120)
                if done.returncode != 0 or "locked" in done.stderr:
                    failures.append(f"{' '.join(args[:2])}: rc {done.returncode}: {done.stderr.strip()}")
                if args[0] == "real" and done.returncode == 0:
                    assert f"imported {TEXTS_PER_FILE}" in done.stdout, done.stdout
                    imported += TEXTS_PER_FILE
            assert writer.poll() is None or round_no == CLI_ROUNDS - 1, "the writer stopped before the CLI was done"
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0 and "locked" not in err, err
    assert failures == []
    commits = int(json.loads(out)["commits"])
    assert commits >= 50

    with Project.open(path) as project:
        after = project.summary()
        assert project.integrity_ok()
        count = lambda sql: project.conn.execute(sql).fetchone()[0]  # noqa: E731
        assert after["samples"] == before["samples"] + commits
        assert count("SELECT COUNT(*) FROM real_texts WHERE source = 'writer'") == commits
        assert count("SELECT COUNT(*) FROM real_texts WHERE text LIKE 'cli batch %'") == imported == \
            CLI_ROUNDS * TEXTS_PER_FILE
        real_before, real_after = (s["real_train"] + s["real_test"] for s in (before, after))
        assert real_after == real_before + commits + imported


def test_a_reader_is_not_blocked_by_an_open_write_transaction(nace_project):
    """WAL: while one connection holds the write lock, another reads the last committed state at once."""
    path = nace_project.path
    other = Project.open(path)
    try:
        before = other.summary()["samples"]
        # No waiting allowed: a reader that the writer blocked would fail with "database is locked" at
        # once, instead of a time limit that a busy machine could break.
        other.conn.execute("PRAGMA busy_timeout = 0")
        with nace_project.transaction() as conn:
            conn.execute("INSERT INTO generation_runs (name, strategies, codes, quota, seed, params)"
                         " VALUES ('held', '[]', '[]', 0, 0, '{}')")
            assert other.conn.execute("SELECT COUNT(*) FROM generation_runs").fetchone()[0] == 0
        assert other.conn.execute("SELECT COUNT(*) FROM generation_runs").fetchone()[0] == 1
        assert other.summary()["samples"] == before
    finally:
        other.close()


def test_a_second_writer_waits_for_the_first_instead_of_failing(nace_project, tmp_path):
    """A write transaction held for a second by one process delays a CLI write; it does not break it."""
    path = str(nace_project.path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    batch = tmp_path / "batch.csv"
    batch.write_text("text,code\nheld back text,01.13\n", encoding="utf-8")
    with nace_project.transaction() as conn:
        conn.execute("INSERT INTO generation_runs (name, strategies, codes, quota, seed, params)"
                     " VALUES ('held', '[]', '[]', 0, 0, '{}')")
        cli = subprocess.Popen([sys.executable, "-m", "engine", "real", "import", "-p", path, str(batch),
                                "--text-column", "text", "--code-column", "code"],
                               env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # long enough for the CLI to start and reach its write
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    assert "imported 1" in out
    assert nace_project.conn.execute("SELECT COUNT(*) FROM real_texts WHERE text = 'held back text'").fetchone()[0] == 1
