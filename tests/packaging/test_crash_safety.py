"""Crash safety: kill -9 in the middle of a job, and the project file is intact with consistent row counts.

Each test starts the job as a separate process through the CLI, waits until it is provably
mid-way (generated samples committed; training progress on stderr; a write transaction filling the
WAL), kills its whole process group with SIGKILL, then checks `PRAGMA integrity_check`, the row
counts of every table, and that the project still works. (That a killed generation run resumes to
the exact quota is tested in tests/engine/test_generate_gemma.py.)
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.store.project import Project
from tests.conftest import REPO
from tests.engine.llm_support import gemma_path  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of a process group is POSIX")


def row_counts(project: Project) -> dict[str, int]:
    tables = [r[0] for r in project.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: project.conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def start_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    # Its own session, so that killing the group also kills the training child it starts.
    return subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has already exited
        pass
    proc.wait(timeout=30)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def check_after_crash(path: Path, before: dict[str, int]) -> dict[str, int]:
    with Project.open(path) as project:
        assert project.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert project.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        after = row_counts(project)
    return after


def test_training_killed_midway_leaves_the_project_intact(nace_project):
    path = nace_project.path
    before = row_counts(nace_project)
    nace_project.close()
    # Many epochs over every code: the kill is sure to land while fastText is still training. Two threads:
    # with one, fastText reports no progress until it has finished.
    proc = start_cli("train", "run", "-p", str(path), "--notes", "1", "--real", "1", "--epoch", "2000",
                     "--dim", "50", "--bucket", "50000", "--threads", "2")
    stderr = bytearray()
    def pump() -> None:
        for chunk in iter(lambda: proc.stderr.read1(256), b""):
            stderr.extend(chunk)

    threading.Thread(target=pump, daemon=True).start()
    try:
        wait_for(lambda: b"training:" in stderr and b"  0.0%" not in bytes(stderr).rsplit(b"\r", 1)[-1]
                 or proc.poll() is not None, 240, "training progress")
        assert proc.poll() is None, f"training ended before it could be killed: {bytes(stderr)[-500:]!r}"
    finally:
        kill_group(proc)

    after = check_after_crash(path, before)
    assert after == before, "a killed training must not register a model or change any other table"
    models_folder = path.parent / f"{path.stem}.models"
    assert not list(models_folder.glob("*.bin")), "no finished model file may be left by a killed training"

    # The project still trains: the next run registers exactly one model.
    done = subprocess.run([sys.executable, "-m", "engine", "train", "run", "-p", str(path), "--notes", "1",
                           "--real", "1", "--subset", "10", "--epoch", "10", "--dim", "20", "--bucket", "20000",
                           "--threads", "1"],
                          env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    with Project.open(path) as project:
        assert row_counts(project)["models"] == before["models"] + 1


def test_import_killed_midway_is_all_or_nothing(nace_project, tmp_path):
    path = nace_project.path
    before = row_counts(nace_project)
    nace_project.close()
    rows = 150_000
    big = tmp_path / "big.csv"
    with open(big, "w", encoding="utf-8") as handle:
        handle.write("text,code\n")
        for i in range(rows):
            handle.write(f"imported activity number {i} of a long file,01.11\n")
    wal = Path(str(path) + "-wal")
    start_size = wal.stat().st_size if wal.exists() else 0
    proc = start_cli("real", "import", "-p", str(path), str(big), "--text-column", "text", "--code-column", "code")
    # Rows are being written inside the import's one transaction once the WAL grows past a few pages.
    try:
        wait_for(lambda: (wal.exists() and wal.stat().st_size > start_size + 512 * 1024) or proc.poll() is not None,
                 240, "the import to start writing")
    except BaseException:
        kill_group(proc)
        raise
    finished_first = proc.poll() is not None
    kill_group(proc)

    after = check_after_crash(path, before)
    imported = after["real_texts"] - before["real_texts"]
    assert imported in (0, rows), f"a killed import left {imported} of {rows} rows"
    assert after["imports"] - before["imports"] == (1 if imported else 0)
    assert {k: v for k, v in after.items() if k not in ("real_texts", "imports")} == \
        {k: v for k, v in before.items() if k not in ("real_texts", "imports")}
    if not finished_first:
        assert imported == 0, "the kill landed before the commit, so nothing may be there"


def test_generation_killed_midway_leaves_the_project_intact(nace_project, gemma_path):
    from engine.generate.runs import GenerationParams, create_run, run_status
    from engine.llm.backends import BackendSettings, HardwareSettings

    one_thread = BackendSettings(hardware=HardwareSettings(threads=1, n_ctx=1024))
    run_id = create_run(nace_project, codes=["10.71", "10.72"], quota=8, strategies=["keywords", "notes"], seed=3,
                        model=str(gemma_path), backend=one_thread, params=GenerationParams(per_request=4, max_words=6))
    path = nace_project.path
    before = row_counts(nace_project)
    nace_project.close()
    proc = start_cli("generate", "run", "-p", str(path), str(run_id), "--quiet")
    watcher = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        wait_for(lambda: watcher.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0] >= 2
                 or proc.poll() is not None, 240, "the first generated samples")
        assert proc.poll() is None, "generation finished before it could be killed"
    finally:
        kill_group(proc)
        watcher.close()

    after = check_after_crash(path, before)
    grown = {t for t in after if after[t] != before[t]}
    assert grown <= {"samples", "generation_units", "generation_runs"}, grown
    with Project.open(path) as project:
        samples = project.conn.execute("SELECT code, text, text_key, strategy, unit, model_sha256 FROM samples"
                                       " WHERE run_id = ?", (run_id,)).fetchall()
        assert 2 <= len(samples) < 16, "killed mid-way: some samples, not the whole quota"
        assert after["samples"] == before["samples"] + len(samples)
        assert all(code in ("10.71", "10.72") and text.strip() and key and strategy and unit and sha
                   for code, text, key, strategy, unit, sha in samples)
        status = run_status(project, run_id)
        # Its runner is dead: shown as interrupted, not running forever; a resume picks it up from here.
        assert status.status == "interrupted" and status.done == len(samples)
