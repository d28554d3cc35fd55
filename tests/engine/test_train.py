"""Training: data mixes with weights, validation carved from real-train, the child-process trainer and its cancel."""

from __future__ import annotations

import dataclasses
import sys
import threading

import pytest

from engine.coders.registry import default_model_id, load_coder, models_folder
from engine.errors import Cancelled
from engine.jobs import CancelToken
from engine.text import file_sha256
from engine.coders.fasttext.training import (DEFAULT_PARAMS, TrainOptions, scaled_epochs, train_fasttext)
from engine.coders.data import DataMix, build_training_data
from engine.errors import TrainingError
from engine.childproc import cli_command
from engine.classification import leaf_codes_under

FAST = dataclasses.replace(DEFAULT_PARAMS, epoch=5, bucket=20_000)


def _add_samples(project, codes):
    with project.transaction() as conn:
        for run_id in (1, 2):
            conn.execute("INSERT INTO generation_runs (id, name, strategies, codes, quota, seed, params)"
                         " VALUES (?, 'r', '[]', '[]', 1, 0, '{}')", (run_id,))
        rows = [(run_id, code, f"synthetic {run_id} {code} {status}", status)
                for run_id in (1, 2) for code in codes[:3] for status in ("accepted", "rejected")]
        conn.executemany("INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash,"
                         " seed, model_sha256, backend, params, status) VALUES (?, ?, ?, ?, 's', 'u', 'v', 'h', 0, 'x',"
                         " 'b', '{}', ?)", [(r, c, t, t, s) for r, c, t, s in rows])


def test_mix_weights_repeat_and_validation_is_carved_from_real_train(nace_project):
    codes = leaf_codes_under(nace_project, ["10", "11"])
    once = build_training_data(nace_project, DataMix(notes=1, real=1, codes=codes))
    twice = build_training_data(nace_project, DataMix(notes=1, real=2, codes=codes))
    counts = once.composition["counts"]
    assert once.composition["train_lines"] == counts["notes"] + counts["real"]
    assert twice.composition["train_lines"] == counts["notes"] + 2 * counts["real"]
    test_texts = {t for (t,) in nace_project.conn.execute("SELECT text FROM real_texts WHERE split = 'test'")}
    train_texts = {t for t, _ in once.train}
    assert not train_texts & test_texts
    assert once.validation and not {t for t, _ in once.validation} & (train_texts | test_texts)
    real_train = nace_project.conn.execute(
        f"SELECT COUNT(*) FROM real_texts WHERE split = 'train' AND code IN ({','.join('?' * len(codes))})",
        codes).fetchone()[0]
    assert counts["real"] + len(once.validation) == real_train
    assert 0.05 < len(once.validation) / real_train < 0.15
    assert {c for _, c in once.train} <= set(codes)


def test_mix_takes_only_accepted_samples_of_chosen_runs(nace_project):
    codes = leaf_codes_under(nace_project, ["10"])
    _add_samples(nace_project, codes)
    data = build_training_data(nace_project, DataMix(notes=0, synthetic=1, codes=codes, run_ids=[2],
                                                     validation_share=0))
    assert sorted(t for t, _ in data.train) == sorted(f"synthetic 2 {c} accepted" for c in codes[:3])
    with pytest.raises(TrainingError):
        build_training_data(nace_project, DataMix(notes=0, real=0, codes=codes))


def test_child_process_training_registers_the_model(nace_project):
    codes = leaf_codes_under(nace_project, ["10", "11"])
    seen = []
    result = train_fasttext(nace_project, DataMix(notes=1, real=1, codes=codes), TrainOptions(params=FAST, name="t"),
                         progress=seen.append)
    assert result.path.parent == models_folder(nace_project) and result.path.exists()
    assert file_sha256(result.path) == result.sha256
    row = nace_project.conn.execute("SELECT name, kind, sha256, path, train_s FROM models WHERE id = ?",
                                    (result.model_id,)).fetchone()
    assert row[:3] == ("t", "fasttext", result.sha256) and not row[3].startswith("/") and row[4] > 0
    assert result.params["epoch"] == 5 and result.composition["counts"]["real"] > 0
    assert result.validation and 0 < result.validation["top1"] <= result.validation["top5"] <= 1
    assert seen and seen[-1].done == seen[-1].total
    assert default_model_id(nace_project) == result.model_id
    coder, record = load_coder(nace_project)
    assert set(coder.codes) == set(codes) and record.kind == "fasttext"


def test_quantized_model_is_an_ftz(nace_project):
    codes = leaf_codes_under(nace_project, ["11"])
    result = train_fasttext(nace_project, DataMix(notes=1, real=1, codes=codes),
                         TrainOptions(params=dataclasses.replace(FAST, bucket=2_000), quantize=True))
    assert result.path.suffix == ".ftz" and result.params["quantized"]
    coder, _ = load_coder(nace_project, result.model_id)
    assert coder.predict("brewing beer", 1)[0][0] in codes


def test_cancel_kills_the_child_and_leaves_the_project_intact(nace_project):
    codes = leaf_codes_under(nace_project, ["10", "11"])
    token = CancelToken()
    started = threading.Event()

    def on_progress(info):
        started.set()
        token.cancel("stop")

    slow = dataclasses.replace(FAST, epoch=2000)
    with pytest.raises(Cancelled):
        train_fasttext(nace_project, DataMix(notes=1, real=1, codes=codes), TrainOptions(params=slow),
                    progress=on_progress, cancel=token)
    assert started.is_set()
    assert nace_project.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 0
    leftovers = [p for p in models_folder(nace_project).rglob("*") if p.is_file()]
    assert leftovers == []
    assert nace_project.integrity_ok()


def test_frozen_bundle_runs_itself_as_the_cli(monkeypatch):
    # In the bundle, sys.executable is the statcoder launcher, which honours `-m engine` (packaging/launcher.py).
    assert cli_command() == [sys.executable, "-m", "engine"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert cli_command() == [sys.executable, "-m", "engine"]


@pytest.mark.slow
def test_autotune_on_validation(nace_project):
    codes = leaf_codes_under(nace_project, ["11"])
    result = train_fasttext(nace_project, DataMix(notes=1, real=1, codes=codes),
                         TrainOptions(params=dataclasses.replace(FAST, bucket=20_000), autotune_s=3))
    assert result.params["autotune_s"] == 3 and result.validation is not None


def test_orphaned_child_stops_training(tmp_path):
    """A trainer whose parent died (a killed GUI) exits instead of training on unseen."""
    import json
    import os
    import subprocess
    import time

    from engine.coders.fasttext.bindings import write_training_file

    train_file = tmp_path / "train.txt"
    write_training_file([("brewing beer", "11.05"), ("making wine", "11.02")] * 200, train_file)
    child = [*cli_command(), "train", "fit", "--input", str(train_file), "--output", str(tmp_path / "m.bin"),
             "--params", json.dumps(dataclasses.asdict(dataclasses.replace(FAST, epoch=100_000, bucket=1_000)))]
    launcher = ("import os, subprocess, sys; env = dict(os.environ, STATCODER_TRAIN_PARENT_PID=str(os.getpid()));"
                f"p = subprocess.Popen({child!r}, env=env, stderr=subprocess.DEVNULL); print(p.pid, flush=True)")
    pid = int(subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, check=True).stdout)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        stat = f"/proc/{pid}/stat"
        if os.path.exists(stat) and open(stat).read().split()[2] == "Z":   # exited, not yet reaped
            break
        time.sleep(0.2)
    else:
        os.kill(pid, 9)
        pytest.fail("the orphaned trainer kept running")
    assert not (tmp_path / "m.bin").exists()


def test_scaled_epochs_keep_line_passes_for_large_sets():
    assert scaled_epochs(500, 50) == 50 and scaled_epochs(12_000, 50) == 50
    assert scaled_epochs(100_000, 50) == 6 and scaled_epochs(24_000, 50) == 25
    assert scaled_epochs(10_000_000, 50) == 5


def test_validation_can_come_from_the_training_pairs_so_no_real_text_tunes_a_zero_real_coder(nace_project):
    codes = leaf_codes_under(nace_project, ["11"])
    real = {t for t, _ in nace_project.conn.execute("SELECT text, code FROM real_texts")}
    data = build_training_data(nace_project, DataMix(notes=1, codes=codes, validation_share=0.3,
                                                     validation_from="training"))
    assert data.validation and not any(t in real for t, _ in data.validation)
    assert not set(data.validation) & set(data.train)
    assert data.composition["validation_from"] == "training data"
    default = build_training_data(nace_project, DataMix(notes=1, codes=codes, validation_share=0.3))
    assert default.validation and all(t in real for t, _ in default.validation)
    with pytest.raises(TrainingError, match="validation_from"):
        build_training_data(nace_project, DataMix(notes=1, codes=codes, validation_from="test"))


def test_a_diverging_learning_rate_is_lowered_instead_of_failing(tmp_path):
    """Through the real child trainer: fastText's "Encountered NaN" becomes a retry at a lower rate."""
    import json
    import subprocess

    from engine.coders.fasttext.bindings import write_training_file
    from engine.coders.fasttext.child import RESULT_MARKER

    write_training_file([("brewing beer", "11.05"), ("making wine", "11.02"), ("cider", "11.03")] * 50,
                        tmp_path / "train.txt")
    params = dataclasses.asdict(dataclasses.replace(FAST, lr=50.0, epoch=50, bucket=1_000, thread=1))
    child = subprocess.run([*cli_command(), "train", "fit", "--input", str(tmp_path / "train.txt"),
                            "--output", str(tmp_path / "m.bin"), "--params", json.dumps(params)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-500:]
    result = json.loads(next(line for line in child.stdout.splitlines()
                             if line.startswith(RESULT_MARKER))[len(RESULT_MARKER):])
    assert result["nan_retries"] >= 1 and result["params"]["lr"] < 50.0
    assert "fastText diverged; retrying" in child.stderr
    assert result["labels"] == 3 and (tmp_path / "m.bin").exists()


def test_a_diverging_autotune_tries_again_then_trains_with_fixed_parameters(monkeypatch, tmp_path):
    """Autotune picks its own rates and may diverge; the run ends with a model, never a crash."""
    from engine.coders.fasttext import bindings as ftmodel

    calls = []

    def fake_train(input, **kwargs):
        calls.append(kwargs)
        if "autotuneValidationFile" in kwargs:
            raise RuntimeError("Encountered NaN.")
        return "model"

    monkeypatch.setattr(ftmodel.fasttext, "train_supervised", fake_train)
    logged = []
    tuned = {"autotuneValidationFile": "v.txt", "autotuneDuration": 3}
    fixed = {"lr": 0.5, "epoch": 5}
    model, retries = ftmodel.train_supervised(tmp_path / "t.txt", tuned, fallback=fixed, log=logged.append)
    assert model == "model" and retries == 2
    assert [("autotuneValidationFile" in c) for c in calls] == [True, True, False]
    assert calls[-1] == fixed
    assert "tuning again" in logged[0] and "fixed parameters" in logged[1]
    calls.clear()
    with pytest.raises(RuntimeError, match="NaN"):
        ftmodel.train_supervised(tmp_path / "t.txt", tuned, retries=1)
    assert len(calls) == 2


def test_small_sets_get_fewer_hash_buckets():
    from engine.coders.fasttext.training import scaled_buckets

    assert scaled_buckets(958, 200_000) == 50_000
    assert scaled_buckets(958, 20_000) == 20_000          # never more than asked for
    assert scaled_buckets(11_799, 200_000) == 200_000


def test_coder_training_runs_in_a_fresh_process_whatever_this_process_s_fasttext_does(monkeypatch):
    """Seen in CI: a process that had trained before got "Encountered NaN" down to lr 0.0005, or
    uniform probabilities; FastTextCoder.train therefore always trains in a child process."""
    from engine.coders.fasttext import model as ftmodel

    def always_nan(input, **kwargs):
        raise RuntimeError("Encountered NaN.")

    monkeypatch.setattr(ftmodel.fasttext, "train_supervised", always_nan)
    coder = ftmodel.FastTextCoder.train([("brewing beer", "11.05"), ("making wine", "11.02")] * 50,
                                        dataclasses.replace(FAST, bucket=1_000, thread=1))
    assert sorted(coder.codes) == ["11.02", "11.05"]
