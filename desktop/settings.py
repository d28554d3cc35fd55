"""App-level settings in QSettings: window geometry, recent projects and the last choices on pages."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 10


def app_settings() -> QSettings:
    """An INI file in the user's config dir; tests point QSettings.setPath at a temp dir."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "statcoder", "desktop")


def recent_projects(settings: QSettings | None = None) -> list[Path]:
    settings = settings or app_settings()
    value = settings.value("recent_projects", [])
    if isinstance(value, str):  # QSettings returns a lone string for a one-item list
        value = [value]
    return [Path(p) for p in value or [] if Path(p).exists()]


def add_recent_project(path: str | Path, settings: QSettings | None = None) -> list[Path]:
    settings = settings or app_settings()
    path = Path(path).resolve()
    items = [path] + [p for p in recent_projects(settings) if p != path]
    items = items[:MAX_RECENT]
    settings.setValue("recent_projects", [str(p) for p in items])
    settings.sync()
    return items
