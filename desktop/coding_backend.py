"""The coding panel's link to the engine: suggestions on a background thread, decisions stored by the engine."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, Sequence

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.assist import coding
from engine.coders.registry import default_model_id, get_model
from engine.coders.coverage import model_coverage
from engine.errors import ModelError
from engine.store.project import Project


class SuggestionLike(Protocol):
    code: str
    probability: float
    title: str
    path: Any  # the ancestors' codes or titles, root first


class CodingBackend(Protocol):
    """What the panel needs; `EngineCodingBackend` provides it from engine.assist.coding."""

    def suggest(self, text: str, k: int = 5) -> Sequence[SuggestionLike]: ...

    def record(self, text: str, chosen: str | None, suggestions: Sequence[SuggestionLike]) -> coding.Decision:
        """Store the decision (chosen None: the text cannot be coded); its kind says which it was."""
        ...

    def undo(self, correction_id: int) -> None: ...

    def revise(self, correction_id: int, chosen: str | None) -> coding.Decision: ...

    def recent(self, limit: int = 50) -> Sequence[coding.StoredDecision]: ...

    def problem(self, text: str) -> str | None:
        """Why a text is too short or meaningless to get suggestions, or None."""
        ...

    def describe(self) -> str: ...

    def coverage(self) -> str | None:
        """A sentence when the coder knows only part of the classification, else None."""
        ...

    # optional: activities(text) -> the activities the text names that the coder ranks toward
    # ('Wholesale'); the panel shows them when the backend has it.


class EngineCodingBackend:
    """engine.assist.coding over the project's default model (the best on validation, or the one chosen)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        model_id = default_model_id(project)
        if model_id is None:
            raise ModelError("this project has no trained model yet; train one on the Train & evaluate page")
        self.model = get_model(project, model_id)
        self._judge = None
        self._judge_lock = threading.Lock()

    def suggest(self, text: str, k: int = 5) -> Sequence[SuggestionLike]:
        return coding.suggest(self.project, text, k=k, model=self.model.id)

    def record(self, text: str, chosen: str | None, suggestions: Sequence[SuggestionLike]) -> coding.Decision:
        top = suggestions[0] if suggestions else None
        suggested, confidence = (top.code, top.probability) if top else (None, None)
        if chosen is None:
            return coding.record_uncodable(self.project, text, suggested, model_id=self.model.id,
                                           confidence=confidence)
        return coding.record_decision(self.project, text, suggested, chosen, model_id=self.model.id,
                                      confidence=confidence)

    def undo(self, correction_id: int) -> None:
        coding.undo_decision(self.project, correction_id)

    def revise(self, correction_id: int, chosen: str | None) -> coding.Decision:
        return coding.revise_decision(self.project, correction_id, chosen)

    def recent(self, limit: int = 50) -> Sequence[coding.StoredDecision]:
        return coding.recent_decisions(self.project, limit)

    def problem(self, text: str) -> str | None:
        return coding.codable_problem(self.project, text)

    def activities(self, text: str) -> list[str]:
        """The activities the text names that the serving coder moves it toward (its title heads)."""
        return coding.activities_named(self.project, text, model=self.model.id)

    def coverage(self) -> str | None:
        # Asked on the GUI thread by every panel over this backend (Batch and Uncoded tabs) right after a
        # training: work it out once per backend (a new model gets a new backend).
        if not hasattr(self, "_coverage"):
            self._coverage = self._coverage_sentence()
        return self._coverage

    def _coverage_sentence(self) -> str | None:
        cover = model_coverage(self.project, self.model.id)
        if not cover.partial:
            return None
        return (f"This coder knows only {cover.describe()}: a text about anything else still gets one of "
                "its codes. Train one on all codes (leave “Only codes under” empty) to cover the rest.")

    def describe(self) -> str:
        top1 = (self.model.validation or {}).get("top1")
        score = f", validation top-1 {top1:.1%}" if isinstance(top1, float) else ""
        return f"{self.model.name} (model {self.model.id}, {self.model.kind}{score})"


    # the LLM judge (engine.assist.judge): opened on first use, on the caller's (worker) thread --------
    def second_opinion(self, text: str):
        """The local LLM's ranking of the top candidates beside the coder's (seconds on a CPU: call it
        off the GUI thread). The default LLM is loaded on the first call and kept."""
        from engine.assist.judge import Judge, judge_backend_settings
        from engine.llm.backends import open_backend

        with self._judge_lock:
            if self._judge is None:
                self._judge = Judge(self.project, open_backend(judge_backend_settings()), model=self.model.id)
            return self._judge.second_opinion(text)

    def judge_available(self) -> bool:
        """Whether a second opinion can be asked: a default local LLM is registered."""
        from engine.llm.registry import get_default_model

        return get_default_model() is not None

    def judge_threshold(self) -> float:
        """Below this first-code probability the coder is unsure: the judge's (fitted or default) threshold."""
        from engine.assist.judge import DEFAULT_THRESHOLD, stored_config

        config = stored_config(self.project)
        return config.threshold if config is not None else DEFAULT_THRESHOLD

    def close(self) -> None:
        with self._judge_lock:
            if self._judge is not None:
                self._judge.backend.close()
                self._judge = None


def engine_backend(project: Project | None) -> CodingBackend | None:
    """The engine's coder for the project, or None when it has no trained model yet."""
    if project is None:
        return None
    try:
        return EngineCodingBackend(project)
    except ModelError:
        return None


class SuggestWorker(QObject):
    """Lives on its own thread; only the newest request is answered, older ones are skipped."""

    ready = Signal(int, str, object, float)   # request id, text, suggestions, milliseconds
    failed = Signal(int, object)

    def __init__(self) -> None:
        super().__init__()
        self.backend: CodingBackend | None = None
        self._latest = 0
        self._lock = threading.Lock()

    def mark_latest(self, request_id: int) -> None:
        with self._lock:
            self._latest = request_id

    @Slot(int, str, int)
    def compute(self, request_id: int, text: str, k: int) -> None:
        with self._lock:
            if request_id != self._latest:
                return
        backend = self.backend
        if backend is None:
            return
        start = time.perf_counter()
        try:
            suggestions = list(backend.suggest(text, k)) if text.strip() else []
        except Exception as exc:  # noqa: BLE001 - shown by the panel, the worker keeps running
            self.failed.emit(request_id, exc)
            return
        self.ready.emit(request_id, text, suggestions, (time.perf_counter() - start) * 1000)


class SuggestThread(QObject):
    """Owns the worker's thread; `request` is called on the GUI thread."""

    requested = Signal(int, str, int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("statcoder-suggest")
        self.worker = SuggestWorker()
        self.worker.moveToThread(self.thread)
        self.requested.connect(self.worker.compute)
        self.thread.start()
        self._next = 0

    def set_backend(self, backend: CodingBackend | None) -> None:
        self.worker.backend = backend

    def request(self, text: str, k: int = 5) -> int:
        self._next += 1
        self.worker.mark_latest(self._next)
        self.requested.emit(self._next, text, k)
        return self._next

    def stop(self) -> None:
        self.thread.quit()
        self.thread.wait(5000)
