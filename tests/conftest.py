"""Shared fixtures: every test gets a fresh data dir and project file; Qt runs offscreen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offscreen unless a platform is chosen: an empty value (a CI runner that clears it) counts as none,
# which otherwise aborts QApplication on a machine without a display.
if not os.environ.get("QT_QPA_PLATFORM"):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory, monkeypatch) -> Path:
    path = tmp_path_factory.mktemp("statcoder-data")
    monkeypatch.setenv("STATCODER_DATA_DIR", str(path))
    return path


@pytest.fixture
def project(tmp_path):
    from engine.store.project import Project

    with Project.create(tmp_path / "test.statcoder") as proj:
        yield proj


@pytest.fixture(scope="session")
def _nace_template(tmp_path_factory) -> Path:
    from engine.classification import import_builtin
    from engine.store.project import Project
    from engine.realdata.importing import import_preset

    path = tmp_path_factory.mktemp("templates") / "nace.statcoder"
    with Project.create(path) as proj:
        import_builtin(proj, "nace2")
        import_preset(proj, "uksic-index")
        proj.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def nace_project(_nace_template, tmp_path):
    """A project with NACE Rev. 2 and the UK SIC index imported (copied from a session template)."""
    import shutil

    from engine.store.project import Project

    path = tmp_path / "nace.statcoder"
    shutil.copy(_nace_template, path)
    with Project.open(path) as proj:
        yield proj


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need ../shared/data beside the repository")
    return path


def snapshot(project) -> list[str]:
    """Everything in the project file, to assert that a failed import changed nothing."""
    return list(project.conn.iterdump())
