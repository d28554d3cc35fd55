"""Read-once views of a project: built on first use, kept per project file and classification size."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

from engine.store.project import Project

T = TypeVar("T", bound="ProjectCache")
V = TypeVar("V")


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


class KeyedCache(Generic[V]):
    """Values that never change for their key, shared by every thread; the least recently used go first.

    `get(key, make)` returns the kept value or keeps what `make()` returns. `make` runs outside the lock,
    so two threads may both make a value once; the values are equal, and the first kept wins.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            value = self._values.setdefault(key, value)
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value
