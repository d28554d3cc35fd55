"""Helpers for the hostile-input tests: a fake coder registered as a model, file hashes, CLI runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.cli import main


class FakeCoder:
    """Suggests the project's first leaf codes with fixed probabilities: enough to exercise every output path."""

    kind = "test-fake"

    def __init__(self, codes: list[str]):
        self.codes = codes

    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        return self.predict_many([text], k)[0]

    def predict_many(self, texts, k: int = 5):
        out = []
        for text in texts:
            first = 0.9 if "sure" in text else 0.3
            probs = [first] + [(1 - first) / (len(self.codes) - 1)] * (len(self.codes) - 1)
            out.append(list(zip(self.codes, probs))[:k])
        return out

    @classmethod
    def load(cls, path):
        return cls(json.loads(Path(path).read_text())["codes"])


def register_fake_model(project, monkeypatch) -> int:
    """A 'test-fake' model whose file (with its true sha256) sits in the project's models folder."""
    from engine.coders import registry

    monkeypatch.setitem(registry.LOADERS, FakeCoder.kind, f"{__name__}:FakeCoder.load")
    codes = [c for (c,) in project.conn.execute("SELECT code FROM codes WHERE is_leaf ORDER BY ord LIMIT 3")]
    folder = project.path.parent / f"{project.path.stem}.models"
    folder.mkdir(exist_ok=True)
    path = folder / "fake.json"
    path.write_text(json.dumps({"codes": codes}))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with project.transaction() as conn:
        model_id = int(conn.execute(
            "INSERT INTO models (name, kind, path, sha256, params, data) VALUES ('fake', ?, ?, ?, '{}', '{}')",
            (FakeCoder.kind, str(path), sha)).lastrowid)
    registry.clear_coder_cache()
    return model_id


def file_hash(path: Path) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def project_hashes(path: Path) -> dict[str, str | None]:
    """The project file and its side files, byte for byte."""
    path = Path(path)
    return {suffix: file_hash(path.with_name(path.name + suffix)) for suffix in ("", "-wal", "-shm")}


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err
