"""The fastText coder: a trained fastText classifier over codes, in this process or a child process."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import fasttext

from engine.coders.base import CoderBase
from engine.coders.fasttext.bindings import LABEL, FastTextParams, preprocess, write_training_file
from engine.coders.fasttext.child import run_child_training
from engine.coders.fasttext.serve import ChildFastText, out_of_process


PREDICT_SLICE = 64


class FastTextCoder(CoderBase):
    """A trained fastText classifier over codes."""

    kind = "fasttext"

    def __init__(self, model: "fasttext.FastText._FastText"):
        self.model = model
        self.codes = [label[len(LABEL):] for label in model.get_labels()]

    @classmethod
    def train(cls, pairs: Sequence[tuple[str, str]], params: FastTextParams | None = None,
              train_file: Path | None = None, labels_of=None) -> "FastTextCoder":
        """Train in a fresh child process and load the result. `labels_of`: see bindings.write_training_file.

        In a process that has trained many models, fastText (fasttext-numpy2) now and then diverges
        at every learning rate, or quietly returns a degenerate model (uniform probabilities: seen in
        the label check under a long test run); a fresh process does neither.
        """
        params = params or FastTextParams()
        with tempfile.TemporaryDirectory(prefix="statcoder-ft-") as tmp:
            path = train_file or Path(tmp) / "train.txt"
            if write_training_file(pairs, path, labels_of) == 0:
                raise ValueError("no training texts")
            output = Path(tmp) / "model.bin"
            run_child_training(path, output, params)
            model = fasttext.load_model(str(output))
        return cls(model)

    @classmethod
    def load(cls, path: str | Path) -> "FastTextCoder":
        if out_of_process():  # the desktop app: the model lives in a child process (engine.coders.fasttext.serve)
            return cls(ChildFastText(path))
        # fastText reads the file holding the GIL; from disk that took 400 ms for an 80 MB model on a busy
        # machine. Reading it first (Python's reads release the GIL) leaves fastText a page-cache copy.
        with open(path, "rb") as handle:
            while handle.read(8 << 20):
                pass
        return cls(fasttext.load_model(str(path)))

    def save(self, path: str | Path) -> None:
        self.model.save_model(str(path))

    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely codes with their probabilities, best first."""
        labels, probs = self.model.predict(preprocess(text) or " ", k=min(k, len(self.codes)))
        return [(label[len(LABEL):], float(min(1.0, p))) for label, p in zip(labels, probs)]

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        if not texts:
            return []
        k = min(k, len(self.codes))
        out: list[list[tuple[str, float]]] = []
        # fastText's predict holds the GIL for the whole call: slices keep each call to a few ms, so a
        # GUI thread waiting for the GIL gets it between slices instead of after the whole batch.
        for start in range(0, len(texts), PREDICT_SLICE):
            part = [preprocess(t) or " " for t in texts[start:start + PREDICT_SLICE]]
            labels, probs = self.model.predict(part, k=k)
            out += [[(l[len(LABEL):], float(min(1.0, p))) for l, p in zip(ls, ps)] for ls, ps in zip(labels, probs)]
        return out
