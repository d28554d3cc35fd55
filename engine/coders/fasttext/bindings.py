"""A thin, safe layer over the fastText bindings: parameters, the text form, training files, training.

statcoder uses `fasttext-numpy2` (same `fasttext` module, maintained fork) because fastText 0.9.3's
`predict()` raises "Unable to avoid copy" on NumPy 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import fasttext

LABEL = "__label__"
_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]", re.UNICODE)

fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time warning of the bindings


def preprocess(text: str) -> str:
    """Lower-case and split punctuation off words: how every text is shown to fastText."""
    return " ".join(_TOKEN.findall(text.casefold().replace("\n", " ")))


@dataclass
class FastTextParams:
    """Defaults are the benchmark's settings (BENCHMARK.md), chosen on validation, not on test."""

    epoch: int = 50
    lr: float = 0.5
    wordNgrams: int = 2
    minn: int = 3
    maxn: int = 5
    dim: int = 100
    loss: str = "softmax"
    thread: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    seed: int = 0
    bucket: int = 2_000_000
    minCount: int = 1

    def as_kwargs(self) -> dict:
        return dict(epoch=self.epoch, lr=self.lr, wordNgrams=self.wordNgrams, minn=self.minn, maxn=self.maxn,
                    dim=self.dim, loss=self.loss, thread=self.thread, seed=self.seed, bucket=self.bucket,
                    minCount=self.minCount, verbose=0)


def write_training_file(pairs: Iterable[tuple[str, str]], path: Path,
                        labels_of: Callable[[str], list[str]] | None = None) -> int:
    """Write (text, code) pairs in fastText's format; returns the number of lines.

    `labels_of`: the labels of a line for a code (several: softmax training draws one per pass;
    engine.coders.hierarchy uses it for smoothing towards siblings).
    """
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for text, code in pairs:
            tokens = preprocess(text)
            if tokens:
                labels = " ".join(f"{LABEL}{c}" for c in labels_of(code)) if labels_of else f"{LABEL}{code}"
                handle.write(f"{labels} {tokens}\n")
                n += 1
    return n


def train_supervised(input_file: str | Path, kwargs: dict, *, retries: int = 5, log=None,
                     fallback: dict | None = None):
    """fastText's train_supervised, retried with a 4x lower learning rate when it diverges.

    A learning rate too high for a small or repetitive set ends in "Encountered NaN"; so, now and
    then, does training again in a process that has already trained (seen with fasttext-numpy2).
    Autotune picks its own learning rates and can diverge the same way: it is tried once more, then
    `fallback` (fixed parameters) trains instead, so a tuning run never ends in a crash.
    Returns (model, retries used); raises the last error when every retry diverged.
    """
    kwargs = dict(kwargs)
    autotune = "autotuneValidationFile" in kwargs
    for attempt in range(retries + 1):
        try:
            return fasttext.train_supervised(input=str(input_file), **kwargs), attempt
        except RuntimeError as exc:
            if "NaN" not in str(exc) or attempt == retries:
                raise
            if autotune and attempt >= 1 and fallback is not None:
                kwargs, autotune = dict(fallback), False
                if log is not None:
                    log("fastText autotune diverged twice; training with the fixed parameters instead")
            elif autotune:
                if log is not None:
                    log("fastText autotune diverged; tuning again")
            elif "lr" in kwargs:
                kwargs["lr"] = kwargs["lr"] / 4
                if log is not None:
                    log(f"fastText diverged; retrying with lr {kwargs['lr']:g}")
            else:
                raise
    raise AssertionError("unreachable")
