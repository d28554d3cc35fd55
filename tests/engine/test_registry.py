"""The coder registry: model files are verified before they are trusted, registered or made the default.

Regression tests for issue 12 (a truncated model registered as the default on a full disk; model files
loaded without a check, from outside the project, or trained for another classification; leftovers of
killed trainings kept forever).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.classification import leaf_codes_under
from engine.coders import registry
from engine.coders.data import DataMix
from engine.coders.fasttext import child, training
from engine.coders.fasttext.model import FastTextCoder
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.registry import (clean_orphans, default_model_id, get_model, load_coder, model_file, models_folder,
                                    register_model, verify_models)
from engine.errors import ModelError, TrainingError
from engine.text import file_sha256

FAST = dataclasses.replace(DEFAULT_PARAMS, epoch=5, bucket=20_000)


@pytest.fixture
def trained(nace_project):
    mix = DataMix(notes=1, real=1, codes=leaf_codes_under(nace_project, ["11"]))
    return train_fasttext(nace_project, mix, TrainOptions(params=FAST, name="good"))


def _model_rows(project) -> int:
    return project.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]


def test_a_model_file_changed_after_training_is_refused(nace_project, trained):
    registry.clear_coder_cache()
    data = trained.path.read_bytes()
    trained.path.write_bytes(data[: len(data) // 3])          # what a full disk or a bad copy leaves
    with pytest.raises(ModelError, match="changed since it was trained"):
        load_coder(nace_project, trained.model_id)
    assert any("changed since it was trained" in p for p in verify_models(nace_project))


def test_a_model_file_outside_the_project_is_refused(nace_project, trained, tmp_path):
    registry.clear_coder_cache()
    elsewhere = tmp_path / "elsewhere" / "model.bin"
    elsewhere.parent.mkdir()
    shutil.copy(trained.path, elsewhere)
    with nace_project.transaction() as conn:
        conn.execute("UPDATE models SET path = ? WHERE id = ?", (str(elsewhere), trained.model_id))
    with pytest.raises(ModelError, match="outside this project's models folder"):
        load_coder(nace_project, trained.model_id)


def test_a_model_of_another_classification_is_refused(nace_project):
    coder = FastTextCoder.train([("making widgets", "W1"), ("selling gadgets", "W2")] * 5, FAST)
    path = model_file(nace_project, "fasttext", ".bin")
    coder.save(path)
    record, _, _ = register_model(nace_project, kind="fasttext", name="foreign", path=path, params={}, data={},
                                  train_s=0.0, validation=None, make_default=False)
    with pytest.raises(ModelError, match="trained for another classification"):
        load_coder(nace_project, record.id)


def test_a_truncated_save_is_refused_and_nothing_is_registered(nace_project, trained, monkeypatch, tmp_path):
    """fastText's save truncates silently on a full disk: a child that reports more bytes than reached the
    disk (the 811 KB file the hostile test found) must not produce a registered model."""
    before = _model_rows(nace_project)
    good = tmp_path / "good.bin"
    shutil.copy(trained.path, good)
    fake_child = tmp_path / "fake_child.py"
    fake_child.write_text(
        "import json, sys\n"
        "out = sys.argv[sys.argv.index('--output') + 1]\n"
        f"data = open({str(good)!r}, 'rb').read()\n"
        "open(out, 'wb').write(data[:811_000])\n"
        f"print({child.RESULT_MARKER!r} + json.dumps({{'train_s': 0.1, 'total_s': 0.1, 'params': {{}}, "
        "'labels': 7, 'nan_retries': 0, 'bytes': len(data)}))\n")
    monkeypatch.setattr(child, "cli_command", lambda: [sys.executable, str(fake_child)])
    mix = DataMix(notes=1, real=1, codes=leaf_codes_under(nace_project, ["11"]))
    with pytest.raises(TrainingError, match="the disk may be full"):
        train_fasttext(nace_project, mix, TrainOptions(params=FAST))
    assert _model_rows(nace_project) == before
    assert default_model_id(nace_project) == trained.model_id
    assert sorted(p.name for p in models_folder(nace_project).glob("fasttext-*")) == [trained.path.name]


def test_the_child_refuses_to_keep_a_short_model_file(tmp_path):
    """The child's own check: a saved file smaller than the model's matrices is deleted, never renamed."""
    coder = FastTextCoder.train([("bread", "A"), ("beer", "B")] * 5, FAST)
    output = tmp_path / "m.bin"

    class ShortWrite:
        def __getattr__(self, name):
            return getattr(coder.model, name)

        def save_model(self, path):
            coder.model.save_model(path)
            with open(path, "r+b") as handle:
                handle.truncate(1000)

    with pytest.raises(TrainingError, match="cut short"):
        child.save_verified(ShortWrite(), output, quantized=False)
    assert list(tmp_path.iterdir()) == []
    assert child.save_verified(coder.model, output, quantized=False) == output.stat().st_size > 1000


def test_training_refuses_when_the_disk_is_nearly_full(nace_project, monkeypatch):
    monkeypatch.setattr(training.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4000, 4000))
    mix = DataMix(notes=1, real=1, codes=leaf_codes_under(nace_project, ["11"]))
    with pytest.raises(TrainingError, match="not enough disk space"):
        train_fasttext(nace_project, mix, TrainOptions(params=FAST))
    assert _model_rows(nace_project) == 0
    assert not list(models_folder(nace_project).glob("fasttext-*"))


def test_a_collapsed_model_never_silently_becomes_the_default(nace_project, trained):
    copy = model_file(nace_project, "fasttext", ".bin")
    shutil.copy(trained.path, copy)
    collapsed = dict(trained.validation, top1=0.079)
    record, made_default, warnings = register_model(
        nace_project, kind="fasttext", name="collapsed", path=copy, params={}, data={}, train_s=1.0,
        validation=collapsed, make_default=True)
    assert not made_default and default_model_id(nace_project) == trained.model_id
    assert warnings and "not made the default" in warnings[0] and "7.9%" in warnings[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_trainings_are_removed_and_nothing_else(nace_project, trained):
    folder = models_folder(nace_project)
    dead = _dead_pid()
    orphan = folder / f"fasttext-20260101-000000-{dead}-1.bin"
    orphan.write_bytes(b"half a model")
    partial = folder / f"fasttext-20260101-000000-{dead}-2.bin.tmp"
    partial.write_bytes(b"x")
    scratch = folder / f"statcoder-train-{dead}-abc"
    scratch.mkdir()
    (scratch / "train.txt").write_text("__label__11.05 confidential answer\n")
    live = folder / f"fasttext-20260101-000000-{__import__('os').getpid()}-3.bin"
    live.write_bytes(b"being written by a live training")
    removed = clean_orphans(nace_project)
    assert sorted(p.name for p in removed) == sorted([orphan.name, partial.name, scratch.name])
    assert trained.path.exists() and live.exists() and not scratch.exists()
    assert get_model(nace_project, trained.model_id).sha256 == file_sha256(trained.path)


def test_two_models_in_the_same_second_never_share_a_file(nace_project):
    """The name had one-second resolution: a quick retrain overwrote (or deleted) the previous model."""
    names = {model_file(nace_project, "fasttext", ".bin") for _ in range(50)}
    assert len(names) == 50 and not any(p.exists() for p in names)    # nothing left if training dies
