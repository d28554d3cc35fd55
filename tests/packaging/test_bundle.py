"""Smoke test of the built PyInstaller bundle (dist/statcoder, or STATCODER_BUNDLE_DIR): CLI, a tiny job, GUI.

Build it first with `packaging/build.sh`; without a bundle these tests are skipped. They run the
bundled programs with the source tree out of reach (cwd in a temp dir, no PYTHONPATH), so a
module, library or asset missing from the bundle fails here rather than on an office PC.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine import __version__
from tests.conftest import REPO
from tests.engine.llm_support import gemma_path  # noqa: F401  (fixture)

BUNDLE = Path(os.environ.get("STATCODER_BUNDLE_DIR", REPO / "dist" / "statcoder"))
EXE = ".exe" if sys.platform == "win32" else ""
CLI = BUNDLE / f"statcoder{EXE}"
DESKTOP = BUNDLE / f"statcoder-desktop{EXE}"

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(not CLI.exists(), reason=f"no bundle at {BUNDLE}: build it with packaging/build.sh"),
]


def bundled(program: Path, *args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    environment.update(env)
    return subprocess.run([str(program), *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_prints_its_version(tmp_path):
    done = bundled(CLI, "--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"statcoder, version {__version__}"


def test_bundle_carries_llama_cpp_fasttext_qt_plugins_and_assets():
    internal = BUNDLE / "_internal"
    if sys.platform.startswith("linux"):
        for lib in ("libllama.so", "libggml.so", "libggml-base.so.0", "libggml-cpu.so.0"):
            assert (internal / "llama_cpp" / "lib" / lib).exists(), lib
        for plugin in ("libqoffscreen.so", "libqxcb.so"):
            assert list(internal.glob(f"PySide6/Qt/plugins/platforms/{plugin}")), plugin
    assert list(internal.glob("fasttext_pybind*"))
    assert (internal / "assets" / "classifications" / "nace-rev2").is_dir()
    assert (internal / "assets" / "realdata" / "uksic2007_alphabetical_index.csv").exists()
    for model in (REPO / "assets" / "models").glob("*.gguf"):  # the shipped sentence-embedding model
        assert (internal / "assets" / "models" / model.name).stat().st_size == model.stat().st_size


def test_both_programs_run_modules_like_python(tmp_path):
    """Child processes (the fastText trainer) are started as `sys.executable -m engine ...`."""
    for program in (CLI, DESKTOP):
        done = bundled(program, "-m", "engine", "--version", cwd=tmp_path)
        assert done.returncode == 0 and __version__ in done.stdout, (program.name, done.stderr)
    probe = bundled(CLI, "-c", "import sys, llama_cpp, fasttext; from llama_cpp import llama_cpp as lib; "
                    "print(sys.frozen, bool(lib.llama_print_system_info()))", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["True", "True"]


def test_llama_cpp_inference_inside_the_bundle(tmp_path, gemma_path):
    model = gemma_path
    code = ("import sys; from llama_cpp import Llama; "
            "llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False); "
            "out = llm.create_completion('Bakery: baking bread and', max_tokens=8, temperature=0.0, seed=1); "
            "print(out['usage']['completion_tokens'])")
    done = bundled(CLI, "-c", code, str(model), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 0


def test_tiny_end_to_end_job_on_the_bundled_cli(tmp_path, gemma_path):
    project = tmp_path / "smoke.statcoder"

    def cli(*args: str) -> str:
        done = bundled(CLI, *args, cwd=tmp_path)
        assert done.returncode == 0, f"{args[:2]}: {done.stderr}"
        return done.stdout

    assert "996 codes (615 leaf codes)" in cli("new", str(project), "--builtin", "nace2", "--real", "uksic-index")
    assert "run_id" in cli("generate", "create", "-p", str(project), "--code", "10.71", "--quota", "2",
                           "--strategy", "keywords", "--model", str(gemma_path), "--threads", "1", "--ctx", "1024",
                           "--per-request", "4", "--json")
    assert "done" in cli("generate", "run", "-p", str(project), "1", "--quiet")
    with sqlite3.connect(project) as conn:
        generated = conn.execute("SELECT COUNT(*) FROM samples WHERE code = '10.71'").fetchone()[0]
    assert generated >= 1
    assert f"{generated} samples" in cli("curate", "run", "-p", str(project), "--no-label-check")
    # Training runs in a child process: the bundled program starting itself with `-m engine`.
    cli("train", "run", "-p", str(project), "--notes", "1", "--real", "1", "--synthetic", "1", "--subset", "10",
        "--epoch", "20", "--dim", "20", "--bucket", "20000", "--threads", "1")
    assert "top-1" in cli("evaluate", "-p", str(project), "--subset", "10")
    assert "384 dims" in cli("embed", "text", "-p", str(project), "baking bread", "brewing beer")
    suggestions = cli("code", "suggest", "-p", str(project), "industrial bakery producing sliced bread", "-k", "3")
    assert len(suggestions.strip().splitlines()) == 3 and "10." in suggestions
    (tmp_path / "in.csv").write_text("text\nbaking bread\nbrewing beer\n", encoding="utf-8")
    cli("code", "batch", "-p", str(project), str(tmp_path / "in.csv"), str(tmp_path / "out.csv"),
        "--text-column", "text")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[0].startswith("text,code,confidence")


def test_first_start_registers_a_bundled_model(tmp_path, gemma_path):
    """What `build.sh --model FILE.gguf` does, done to the built bundle: a GGUF file in _internal/models."""
    folder = BUNDLE / "_internal" / "models"
    if folder.exists():
        pytest.skip("this bundle was built with a model; the test needs one built without")
    folder.mkdir()
    try:
        try:
            os.link(gemma_path, folder / gemma_path.name)
        except OSError:
            (folder / gemma_path.name).symlink_to(gemma_path)
        first = bundled(CLI, "models", "list", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "registered the bundled model" in first.stderr and "gemma" in first.stdout.lower()
        again = bundled(CLI, "models", "list", cwd=tmp_path)
        assert again.returncode == 0 and "registered" not in again.stderr
        assert again.stdout == first.stdout
    finally:
        shutil.rmtree(folder)


def test_gui_starts_offscreen_and_exits_cleanly(tmp_path):
    done = bundled(DESKTOP, "--smoke-test", cwd=tmp_path, timeout=120, QT_QPA_PLATFORM="offscreen")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr   # start-up time is measured in bench/, not limited here
