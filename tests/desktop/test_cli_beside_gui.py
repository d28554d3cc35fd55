"""The GUI and the CLI on one project file at once (WAL): `statcoder generate` with the test model and
`statcoder curate run` in other processes while the GUI trains a coder and codes texts. No command and no
page may fail ("database is locked", "disk I/O error"), and nothing either side wrote may be lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.conftest import REPO
from tests.desktop.conftest import wait_jobs

pytestmark = pytest.mark.slow

TEXTS = ["bakery making bread", "brewing beer", "cider from apples", "chocolate factory", "fresh pasta maker"]


@pytest.fixture(scope="session")
def gemma(tmp_path_factory) -> Path:
    from engine.llm.registry import test_model_path

    return test_model_path(directory=tmp_path_factory.mktemp("gemma-cli"))


def _cli(*args: str, wait: bool = True):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "engine", *args]
    if wait:
        return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_generation_and_curation_while_the_gui_trains_and_codes(window, qtbot, trained_path, gemma):
    path = str(trained_path)
    created = _cli("generate", "create", "-p", path, "--code", "10.71", "--code", "10.72", "--quota", "3",
                   "--strategy", "notes", "--model", str(gemma), "--threads", "1", "--ctx", "1024",
                   "--per-request", "3", "--json")
    assert created.returncode == 0, created.stderr
    run_id = json.loads(created.stdout)["run_id"]
    project = window.open_project(trained_path)
    generation = _cli("generate", "run", "-p", path, str(run_id), "--quiet", wait=False)
    failures: list[str] = []
    window.messages.shown.connect(lambda level, text: failures.append(text) if level == "error" else None)

    # The GUI trains a coder (a child process writes the model, the page stores it) ...
    window.show_page("train")
    train = window.pages["train"]
    train.scope.setText("10.7")
    train.epochs.setValue(5)
    qtbot.mouseClick(train.train_button, Qt.MouseButton.LeftButton)
    # ... and codes texts, while the CLI curates what the generation has written so far.
    curations = []
    window.show_page("code")
    panel = window.pages["code"].panel
    for text in TEXTS:
        curations.append(_cli("curate", "run", "-p", path, "--no-label-check", wait=False))
        panel.text.setText(text)
        qtbot.waitUntil(lambda t=text: panel.suggested_text == t and bool(panel.suggestions), timeout=30_000)
        qtbot.keyClick(panel.text, Qt.Key.Key_Return)
        for proc in curations:
            proc.wait(timeout=300)
    wait_jobs(qtbot, window, timeout=300_000)
    out, err = generation.communicate(timeout=600)
    for proc in curations:
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0 and "locked" not in stderr, stderr
    assert generation.returncode == 0, err
    assert "locked" not in err and "disk I/O" not in err
    assert failures == [], failures

    # Nothing lost: every decision, every sample of the run, the new coder and every curation.
    stored = [r[0] for r in project.conn.execute("SELECT text FROM corrections ORDER BY id")]
    assert stored == TEXTS
    per_code = dict(project.conn.execute("SELECT code, COUNT(*) FROM samples WHERE run_id = ? GROUP BY code",
                                         (run_id,)).fetchall())
    assert per_code == {"10.71": 3, "10.72": 3}
    assert project.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 2
    assert project.conn.execute("SELECT COUNT(*) FROM curation_runs").fetchone()[0] == len(TEXTS)
    assert project.integrity_ok()
