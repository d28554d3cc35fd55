"""The interface every coder kind implements, and the record every trainer returns.

A coder is a trained classifier over codes. `predict_many` is the one primitive each kind writes;
`predict` is derived from it (simonw/llm's `embed_batch` → `embed`; Orange3's `Model.__call__`).
This module imports no coder kind: kinds are found through `engine.coders.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from engine.changes import Changes

Prediction = list[tuple[str, float]]


@runtime_checkable
class Coder(Protocol):
    """A trained classifier over codes. fastText, embedding and ensemble coders all look like this."""

    kind: str
    codes: list[str]

    def predict(self, text: str, k: int = 5) -> Prediction:
        """The k most likely codes with probabilities, best first."""
        ...

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[Prediction]:
        ...


class CoderBase:
    """Derives `predict` from `predict_many`, so a kind writes only the batch primitive."""

    kind: str = ""
    codes: list[str]

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[Prediction]:
        raise NotImplementedError

    def predict(self, text: str, k: int = 5) -> Prediction:
        return self.predict_many([text], k)[0]


def held_out_view(coder):
    """The coder as it was before it joined its validation lines to its references (a zero-real kNN does, an
    ensemble over one does through it): what must score those lines, or texts drawn the same way (held-out
    samples), so that a threshold or a judge is not fitted on texts the coder has seen. Itself otherwise."""
    held_out = getattr(coder, "held_out", None)
    return held_out() if callable(held_out) else coder


@dataclass
class TrainedModel:
    """What every trainer returns: the registered model, how it was trained and how it validated.

    `made_default` says whether it now serves suggestions; `warnings` are things the user must be told
    (a validation score that collapsed, a model that was therefore not made the default).
    """

    model_id: int
    kind: str
    name: str
    path: Path
    sha256: str
    train_s: float
    params: dict[str, Any]
    composition: dict[str, Any]
    validation: dict[str, Any] | None
    made_default: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> Changes:
        """A new coder is registered (and may now be the one used for coding)."""
        return Changes(models=True)
