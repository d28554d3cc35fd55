"""The installed llama.cpp must run on any x86-64-v3 PC: a native build crashed here (AMX kernel, general
protection fault on the first generation) and would stop with 'illegal instruction' on PCs without AVX-512."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from engine.llm.portability import parse_system_info, portability_problem
from tests.conftest import REPO

NATIVE_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
              "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
              "OPENMP = 1 | REPACK = 1 | ")
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | "


def test_system_info_is_parsed():
    features = parse_system_info(NATIVE_AMX)
    assert features["AVX2"] and features["AMX_INT8"] and features["AVX512"]
    assert parse_system_info("CPU : AVX512 = 0 | AVX2 = 1")["AVX512"] is False


def test_a_native_build_is_named_with_the_rebuild_command():
    problem = portability_problem(parse_system_info(NATIVE_AMX), machine="x86_64")
    assert problem is not None
    assert "AVX512" in problem and "AMX_INT8" in problem and "general protection fault" in problem
    assert "GGML_NATIVE=OFF" in problem
    assert portability_problem(parse_system_info(PORTABLE), machine="x86_64") is None
    assert portability_problem(parse_system_info(NATIVE_AMX), machine="aarch64") is None


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 builds only")
def test_the_installed_llama_cpp_is_a_portable_build():
    # What packaging/build.sh runs before it bundles anything.
    done = subprocess.run([sys.executable, "-m", "engine.llm.portability"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "portable x86-64-v3 build" in done.stdout
