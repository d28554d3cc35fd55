"""A fastText model served by a child process, for a GUI that must never wait for the GIL.

fastText's Python binding holds the GIL while it loads a model (55 ms warm, 400 ms cold for an
80 MB file on a busy machine) and while it predicts a batch. In the desktop app every Qt slot needs
the GIL, so those calls froze the event loop even from a worker thread. `ChildFastText` looks like a
fastText model to `FastTextCoder` (predict, get_labels) but the model lives in a child process
(`statcoder coders serve FILE`): the parent only writes and reads pipes, which release the GIL.

The protocol is one JSON object per line. The child first answers {"labels": [...]} (or {"error"}),
then reads {"texts": [...], "k": k} and answers {"labels": [[...]], "probs": [[...]]}. It exits when
its stdin closes, so it never outlives the app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import IO, Sequence

from engine.childproc import cli_command
from engine.errors import ModelError

ENV = "STATCODER_FASTTEXT_CHILD"


def out_of_process() -> bool:
    """Whether fastText models load in a child process (set by the desktop app)."""
    return os.environ.get(ENV) == "1"


def set_out_of_process(enabled: bool) -> None:
    os.environ[ENV] = "1" if enabled else "0"


def serve(path: str | Path, stdin: IO[str] = sys.stdin, stdout: IO[str] = sys.stdout) -> int:
    """The child's side: load the model, then answer prediction requests until stdin closes."""
    import fasttext

    def send(obj: dict) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    try:
        model = fasttext.load_model(str(path))
    except Exception as exc:  # noqa: BLE001 - the parent turns it into a ModelError naming the file
        send({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"labels": list(model.get_labels())})
    for line in stdin:
        try:
            request = json.loads(line)
            labels, probs = model.predict(list(request["texts"]), k=int(request["k"]))
            send({"labels": [list(ls) for ls in labels], "probs": [[float(p) for p in ps] for ps in probs]})
        except Exception as exc:  # noqa: BLE001 - a bad request is answered, the child stays up
            send({"error": f"{type(exc).__name__}: {exc}"})
    return 0


def _stop(proc: subprocess.Popen) -> None:
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=2)
    except Exception:  # noqa: BLE001 - best effort at exit
        proc.kill()


class ChildFastText:
    """The subset of fastText's model API that FastTextCoder uses, answered by a child process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([*cli_command(), "coders", "serve", str(self.path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     bufsize=1)
        self._finalizer = weakref.finalize(self, _stop, self.proc)
        first = self._read()
        self._labels = list(first["labels"])

    def _read(self) -> dict:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            err = (self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else "").strip()
            raise ModelError(f"the fastText process for {self.path.name} stopped"
                             + (f": {err.splitlines()[-1]}" if err else ""))
        answer = json.loads(line)
        if "error" in answer:
            raise ModelError(f"fastText could not use {self.path.name}: {answer['error']}")
        return answer

    def get_labels(self) -> list[str]:
        return list(self._labels)

    def predict(self, text: str | Sequence[str], k: int = 1):
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        with self._lock:
            if self.proc.stdin is None or self.proc.poll() is not None:
                raise ModelError(f"the fastText process for {self.path.name} is not running")
            self.proc.stdin.write(json.dumps({"texts": texts, "k": k}) + "\n")
            self.proc.stdin.flush()
            answer = self._read()
        if single:
            return tuple(answer["labels"][0]), answer["probs"][0]
        return answer["labels"], answer["probs"]

    def close(self) -> None:
        self._finalizer()
