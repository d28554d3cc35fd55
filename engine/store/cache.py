"""Read-once views of a project: built on first use, kept per project file and classification size."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from engine.store.project import Project

T = TypeVar("T", bound="ProjectCache")


class ProjectCache:
    """Subclasses read what they need in `__init__(project)`; `of(project)` builds one per project file
    and code count (a re-imported classification gets a fresh one), shared by every thread."""

    _lock: threading.Lock
    _by_project: dict[tuple[str, int], Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._lock = threading.Lock()
        cls._by_project = {}

    def __init__(self, project: Project) -> None:  # pragma: no cover - every subclass defines its own
        raise NotImplementedError

    @classmethod
    def of(cls: type[T], project: Project) -> T:
        count = project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()[0]
        key = (str(project.path), count)
        with cls._lock:
            found = cls._by_project.get(key)
            if found is None:
                found = cls._by_project[key] = cls(project)
            return found
