"""Child processes of statcoder's own CLI: how to start one (from source or the bundle), and orphan handling."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import IO

PARENT_PID_ENV = "STATCODER_TRAIN_PARENT_PID"


def cli_command() -> list[str]:
    """How to run our own CLI in a child process, from source or from the PyInstaller bundle.

    In the bundle sys.executable is `statcoder` or `statcoder-desktop`; both honour `-m engine`
    (packaging/launcher.py), whereas `[sys.executable]` alone would start a second GUI.
    """
    return [sys.executable, "-m", "engine"]


def child_env() -> dict[str, str]:
    """The environment for a child that must stop when this process dies."""
    return dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_PID_ENV: str(os.getpid())})


def pump(stream: IO[bytes], sink: "queue.Queue[bytes | None]") -> None:
    """Copy a child's pipe into a queue (None at its end), so the reader can poll with a timeout."""
    for chunk in iter(lambda: stream.read1(4096), b""):  # type: ignore[attr-defined]
        sink.put(chunk)
    sink.put(None)


def exit_when_orphaned(interval_s: float = 0.5) -> None:
    """If the parent dies (killed GUI, closed terminal), stop instead of running on unseen."""
    # The parent passes its pid: if it died before we got here, getppid() is already someone else.
    parent = int(os.environ.get(PARENT_PID_ENV) or os.getppid())

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="statcoder-orphan-watch", daemon=True).start()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True
