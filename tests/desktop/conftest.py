"""Desktop fixtures: isolated QSettings, a main window, and helpers to wait for jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_qsettings(tmp_path_factory):
    from PySide6.QtCore import QSettings

    path = tmp_path_factory.mktemp("qsettings")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))
    return path


@pytest.fixture
def answer(monkeypatch):
    """What the yes/no question answers; tests may change `answer.value` or read `answer.asked`."""
    import desktop.main_window
    import desktop.messages

    class Answer:
        value = True
        asked: list[str] = []

    state = Answer()
    state.asked = []

    def ask(parent, title, question):
        state.asked.append(question)
        return state.value

    monkeypatch.setattr(desktop.main_window, "ask_yes_no", ask)
    monkeypatch.setattr(desktop.messages, "ask_yes_no", ask)   # pages ask through the module: never a modal box
    return state


@pytest.fixture
def window(qtbot, answer):
    from desktop.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.cancel_all()
    win.runner.wait()
    from engine.coders.registry import clear_coder_cache
    from engine.coders.fasttext.serve import set_out_of_process

    set_out_of_process(False)   # the window turned it on; engine tests after these load in-process
    clear_coder_cache()


@pytest.fixture
def nace_path(_nace_template, tmp_path) -> Path:
    path = tmp_path / "nace.statcoder"
    shutil.copy(_nace_template, path)
    return path


def wait_jobs(qtbot, window, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=timeout)


@pytest.fixture(scope="session")
def _trained_template(_nace_template, tmp_path_factory) -> Path:
    """NACE with a fastText coder for divisions 10-11 trained through the engine (child process)."""
    from engine.coders.fasttext.bindings import FastTextParams
    from engine.store.project import Project
    from engine.coders.data import DataMix
    from engine.coders.fasttext.training import TrainOptions, train_fasttext
    from engine.classification import leaf_codes_under

    folder = tmp_path_factory.mktemp("trained")
    path = folder / "nace.statcoder"
    shutil.copy(_nace_template, path)
    with Project.open(path) as project:
        mix = DataMix(notes=1, real=1, codes=leaf_codes_under(project, ["10", "11"]))
        params = FastTextParams(epoch=60, dim=50, bucket=100_000, thread=1)
        train_fasttext(project, mix, TrainOptions(params=params, name="fastText 10-11 (test)"))
        project.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def trained_path(_trained_template, tmp_path) -> Path:
    """A copy of the trained project, with its models folder beside it."""
    folder = tmp_path / "trained"
    folder.mkdir()
    shutil.copy(_trained_template, folder / _trained_template.name)
    models = _trained_template.with_name(_trained_template.stem + ".models")
    shutil.copytree(models, folder / models.name)
    return folder / _trained_template.name
