"""Entry point of the frozen bundle: the CLI or the desktop app by program name, and `-m module` for child processes.

The bundle has two programs built from this one script: `statcoder` (console) and
`statcoder-desktop` (windowed). A frozen program has no Python interpreter to run
`[sys.executable, "-m", "engine", ...]`, which is how the engine starts its child processes
(the fastText trainer); so this launcher understands that much of Python's command line:
leading `-u`/`-B`/`-E`/`-s`/`-I`/`-O` flags, then `-m MODULE ARGS` or `-c CODE ARGS`.
From a source checkout it behaves the same way, which is how its tests run it.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

DESKTOP_PROGRAM = "statcoder-desktop"
# Flags that change how CPython starts; a frozen program has already started, so only -u matters.
_START_FLAGS = {"-u", "-B", "-E", "-s", "-I", "-O", "-OO", "-b", "-q"}


def parse_interpreter_args(args: list[str]) -> tuple[str | None, str | None, list[str], bool]:
    """(module for -m, code for -c, remaining args, unbuffered) from a Python-like command line."""
    unbuffered = False
    while args and args[0] in _START_FLAGS:
        unbuffered = unbuffered or args[0] == "-u"
        args = args[1:]
    if args and args[0] in ("-m", "-c") and len(args) >= 2:
        module, code = (args[1], None) if args[0] == "-m" else (None, args[1])
        return module, code, args[2:], unbuffered
    if args and args[0][:2] in ("-m", "-c") and len(args[0]) > 2:  # -mengine, as CPython allows
        module, code = (args[0][2:], None) if args[0][:2] == "-m" else (None, args[0][2:])
        return module, code, args[1:], unbuffered
    return None, None, args, unbuffered


def program_name() -> str:
    return Path(sys.executable if getattr(sys, "frozen", False) else sys.argv[0]).stem


def register_bundled_models() -> None:
    """A bundle built with `--model FILE.gguf` carries it in _internal/models: register it on first start."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not bundle or not (Path(bundle) / "models").is_dir():
        return
    from bundled_models import register_bundled_models as register

    for name in register(Path(bundle) / "models"):
        print(f"registered the bundled model '{name}'", file=sys.stderr)


def main() -> int:
    import multiprocessing

    multiprocessing.freeze_support()
    module, code, rest, unbuffered = parse_interpreter_args(sys.argv[1:])
    if unbuffered or os.environ.get("PYTHONUNBUFFERED"):
        # A parent process parses the child's progress line by line: don't let it sit in a buffer.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None and hasattr(stream, "reconfigure"):
                stream.reconfigure(line_buffering=True, write_through=True)
    if module is not None:
        sys.argv = [sys.argv[0], *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    if code is not None:
        sys.argv = ["-c", *rest]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 - python -c semantics
        return 0
    register_bundled_models()
    if program_name().startswith(DESKTOP_PROGRAM):
        from desktop.app import main as desktop_main

        return desktop_main([sys.argv[0], *rest])
    from engine.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    sys.exit(main())
