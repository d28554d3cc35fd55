"""The bundle's launcher, run from source: it honours `-m`/`-c` like Python, which child processes rely on."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine import __version__
from tests.conftest import REPO
from tests.engine.llm_support import gemma_path  # noqa: F401  (fixture)

LAUNCHER = REPO / "packaging" / "launcher.py"


@pytest.fixture(scope="module")
def launcher():
    spec = importlib.util.spec_from_file_location("statcoder_launcher", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, expected", [
    (["--version"], (None, None, ["--version"], False)),
    (["-m", "engine", "train", "fit"], ("engine", None, ["train", "fit"], False)),
    (["-u", "-B", "-m", "engine", "info"], ("engine", None, ["info"], True)),
    (["-mengine", "info"], ("engine", None, ["info"], False)),
    (["-c", "print(1)", "x"], (None, "print(1)", ["x"], False)),
    (["project.statcoder"], (None, None, ["project.statcoder"], False)),
    (["-m"], (None, None, ["-m"], False)),
])
def test_parse_interpreter_args(launcher, args, expected):
    assert launcher.parse_interpreter_args(args) == expected


def run_launcher(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, timeout=120,
                          env=environment, cwd=REPO)


def test_launcher_runs_the_cli_and_modules(tmp_path):
    assert __version__ in run_launcher("--version").stdout
    assert __version__ in run_launcher("-u", "-m", "engine", "--version").stdout
    made = run_launcher("-m", "engine", "new", str(tmp_path / "p.statcoder"))
    assert made.returncode == 0 and (tmp_path / "p.statcoder").exists()
    failed = run_launcher("-m", "engine", "info", "-p", str(tmp_path / "missing.statcoder"))
    assert failed.returncode == 1 and "project file not found" in failed.stderr
    code = run_launcher("-c", "import sys; print(sys.argv[1:])", "a", "b")
    assert code.stdout.strip() == "['a', 'b']"


def test_the_trainer_command_works_from_either_bundled_program():
    """engine.coders.fasttext.child starts its child as `sys.executable -m engine`; the launcher must accept that form."""
    from engine.childproc import cli_command

    assert cli_command()[1:] == ["-m", "engine"]


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy(source, target)


def test_models_bundled_with_the_app_are_registered_on_first_start_only(tmp_path, gemma_path):
    spec = importlib.util.spec_from_file_location("bundled_models", REPO / "packaging" / "bundled_models.py")
    bundled_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundled_models)
    from engine.llm.registry import get_default_model, list_models

    folder = tmp_path / "_internal" / "models"
    folder.mkdir(parents=True)
    link_or_copy(gemma_path, folder / gemma_path.name)
    (folder / "README.txt").write_text("not a model", encoding="utf-8")
    added = bundled_models.register_bundled_models(folder)
    assert len(added) == 1
    assert [Path(m.path) for m in list_models()] == [(folder / gemma_path.name).resolve()]
    assert get_default_model().name == added[0]
    assert bundled_models.register_bundled_models(folder) == []  # later starts: nothing to do
    assert len(list_models()) == 1
