"""Which x86 instructions the installed llama.cpp was compiled for, and whether that is safe to ship.

llama-cpp-python builds llama.cpp from source, by default with `-march=native`: the library then uses
every instruction of the build machine's CPU. That breaks two ways:

- a bundle built on a machine with AVX-512 stops with "illegal instruction" on an office PC without it;
- on a CPU with AMX (recent Xeons), llama.cpp 0.3.36's AMX matrix kernel dies with a general protection
  fault in `ldtilecfg` (`ggml_backend_amx_mul_mat`), so the first generation crashes the process (seen
  here with Gemma 3 270M and Qwen2.5 Q4_K_M on a Xeon with AMX-INT8, GCC 12).

The install commands therefore build with `CMAKE_ARGS="-DGGML_NATIVE=OFF"`, which gives the x86-64-v3
level (AVX2, FMA, F16C, BMI2: every x86 PC since about 2015) and nothing beyond it.
`packaging/build.sh` runs `python -m engine.llm.portability` and refuses to bundle a native build.

The features are the compile-time flags llama.cpp reports in `llama_print_system_info()`.
"""

from __future__ import annotations

import platform
import re
import sys

# Compiled-in features beyond x86-64-v3 that make a library unfit to ship (or, for AMX, unfit to run).
BEYOND_BASELINE = ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "AVX_VNNI")
REBUILD = ('CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv/bin/pip install --no-cache-dir --force-reinstall --no-deps '
           '"llama-cpp-python==0.3.36"')


def parse_system_info(info: str) -> dict[str, bool]:
    """`llama_print_system_info()`'s "CPU : SSE3 = 1 | AVX = 1 | ..." as {feature: compiled in}."""
    return {name: value == "1" for name, value in re.findall(r"([A-Z][A-Z0-9_]*) = ([01])", info)}


def compiled_features() -> dict[str, bool]:
    import llama_cpp

    return parse_system_info(llama_cpp.llama_print_system_info().decode("utf-8", errors="replace"))


def portability_problem(features: dict[str, bool] | None = None, *, machine: str | None = None) -> str | None:
    """None when the installed llama.cpp uses no instruction beyond x86-64-v3; otherwise what is wrong and
    the command that rebuilds it. Only x86 is checked (an ARM build's NEON/SVE flags are another matter)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return None
    features = compiled_features() if features is None else features
    extra = [name for name in BEYOND_BASELINE if features.get(name)]
    if not extra:
        return None
    return ("llama.cpp was compiled for this machine's CPU only (" + ", ".join(extra) + "): a bundle built from it "
            "stops with 'illegal instruction' on PCs without those instructions"
            + (", and its AMX kernel crashes with a general protection fault" if "AMX_INT8" in extra else "")
            + ". Rebuild it for every x86-64-v3 CPU: " + REBUILD)


def main() -> int:
    problem = portability_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print("llama.cpp: portable x86-64-v3 build" if platform.machine().lower() in ("x86_64", "amd64")
          else f"llama.cpp: {platform.machine()} build (not checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
