"""Where statcoder keeps app-level data (model registry, settings, logs) and finds its assets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "statcoder"
DATA_DIR_ENV = "STATCODER_DATA_DIR"
ASSETS_DIR_ENV = "STATCODER_ASSETS_DIR"


def data_dir() -> Path:
    """The user data dir; `STATCODER_DATA_DIR` overrides it (tests always set it)."""
    override = os.environ.get(DATA_DIR_ENV)
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    """The assets/ folder: from the env override, the frozen bundle, a source checkout, or the install prefix."""
    candidates: list[Path] = []
    if os.environ.get(ASSETS_DIR_ENV):
        candidates.append(Path(os.environ[ASSETS_DIR_ENV]))
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "assets")
    candidates.append(Path(__file__).resolve().parent.parent / "assets")
    candidates.append(Path(sys.prefix) / "share" / APP_NAME / "assets")
    for candidate in candidates:
        if (candidate / "classifications").is_dir():
            return candidate
    raise FileNotFoundError(
        "statcoder's assets folder was not found; looked in: " + ", ".join(str(c) for c in candidates)
    )
