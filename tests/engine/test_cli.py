"""The `statcoder` command: subcommands, help, one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
import subprocess
import sys

import pytest

from engine import __version__
from engine.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    for command in (["--help"], ["new", "--help"], ["classification", "import", "--help"],
                    ["real", "import", "--help"], ["codes", "show", "--help"], ["codes", "search", "--help"],
                    ["codes", "list", "--help"], ["info", "--help"]):
        assert main(command) == 0
        assert "Usage:" in capsys.readouterr().out


def test_walkthrough(capsys, tmp_path):
    path = str(tmp_path / "nace.statcoder")
    code, out, _ = run(capsys, "new", path)
    assert code == 0 and "created project" in out
    code, out, _ = run(capsys, "classification", "import", "-p", path, "--builtin", "nace2")
    assert code == 0 and "996 codes (615 leaf codes), per level 21 / 88 / 272 / 615" in out
    code, out, _ = run(capsys, "real", "import", "-p", path, "--preset", "uksic-index")
    assert code == 0 and "imported 15957" in out
    code, out, _ = run(capsys, "codes", "show", "-p", path, "01.11")
    assert code == 0 and "growing of rice  ->  01.12" in out and "Siblings:" in out
    code, out, _ = run(capsys, "codes", "show", "-p", path, "01.11", "--json")
    assert json.loads(out)["path"] == ["A AGRICULTURE, FORESTRY AND FISHING",
                                       "01 Crop and animal production, hunting and related service activities",
                                       "01.1 Growing of non-perennial crops"]
    code, out, _ = run(capsys, "codes", "search", "-p", path, "bread", "--leaves")
    assert code == 0 and "10.71" in out
    code, out, _ = run(capsys, "codes", "list", "-p", path, "--level", "1", "--json")
    assert len(json.loads(out)) == 21
    code, out, _ = run(capsys, "info", "-p", path, "--json")
    assert json.loads(out)["real_train"] + json.loads(out)["real_test"] == 15957


def test_expected_errors_are_one_line_and_non_zero(capsys, tmp_path):
    path = str(tmp_path / "p.statcoder")
    run(capsys, "new", path)
    code, out, err = run(capsys, "codes", "show", "-p", path, "99.99")
    assert code == 1 and err.strip() == "Error: unknown code '99.99': it is not in this project's classification"
    code, _, err = run(capsys, "info", "-p", str(tmp_path / "missing.statcoder"))
    assert code == 1 and "project file not found" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("Code,Title\n01,A\n01,B\n")
    code, _, err = run(capsys, "classification", "import", "-p", path, str(bad), "--map", "code=Code",
                       "--map", "title=Title")
    assert code == 1 and "row 3" in err and "duplicate code '01'" in err
    code, _, err = run(capsys, "classification", "import", "-p", path, str(bad), "--map", "nonsense=Code")
    assert code == 2 and "bad mapping" in err
    code, _, err = run(capsys, "classification", "import", "-p", path, "--builtin", "isco99")
    assert code == 1 and "no built-in classification 'isco99'" in err


def _console_script() -> str | None:
    # The script pip installed sits beside this interpreter (a venv's bin/), whether or not it is on PATH.
    beside = Path(sys.executable).parent / ("statcoder.exe" if sys.platform == "win32" else "statcoder")
    return str(beside) if beside.exists() else shutil.which("statcoder")


@pytest.mark.skipif(_console_script() is None, reason="statcoder is not installed as a command")
def test_installed_console_script():
    result = subprocess.run([_console_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and __version__ in result.stdout


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "engine", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and __version__ in result.stdout
