"""Training data mixes and fastText training in a child process (progress parsed, cancel by killing it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from engine.coders.base import choose_default_model, models_folder
from engine.errors import Cancelled, ModelError, StatcoderError
from engine.coders.fasttext.model import FastTextCoder, FastTextParams, train_supervised, write_training_file
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.classification.note_lines import notes_pairs
from engine.store.project import Project
from engine.text import file_sha256, normalise_key

# The benchmark's settings (BENCHMARK.md) except the hash-bucket count: fastText's 2M buckets make an
# 800 MB model that takes seconds to load, and 200k scored the same on the validation split
# (bench/results/defaults-validation.md), at 80 MB.
DEFAULT_PARAMS = FastTextParams(bucket=200_000, thread=2)
VALIDATION_SHARE = 0.1
RESULT_MARKER = "STATCODER-TRAIN-RESULT "
PARENT_PID_ENV = "STATCODER_TRAIN_PARENT_PID"
_PROGRESS = re.compile(rb"Progress:\s*([0-9.]+)%")
SOURCES = ("notes", "synthetic", "real", "augmented")


class TrainingError(StatcoderError):
    """Training could not run or its child process failed."""


@dataclass
class DataMix:
    """Which data trains a model. Weights are repetitions: 0 leaves a source out, 2 shows it twice."""

    notes: int = 1
    synthetic: int = 0
    real: int = 0
    augmented: int = 0
    run_ids: list[int] | None = None          # synthetic samples from these generation runs only
    codes: list[str] | None = None            # restrict to these leaf codes (subset runs)
    validation_share: float = VALIDATION_SHARE
    # "real": validate on a carve of real-train when the project has real texts (the default);
    # "training": carve validation from the mix's own pairs, so a coder without real data (the
    # zero-real benchmark arm) is tuned without any real text.
    validation_from: str = "real"

    def weights(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in SOURCES}


@dataclass
class TrainingData:
    train: list[tuple[str, str]]
    validation: list[tuple[str, str]]
    composition: dict[str, Any]


@dataclass
class TrainOptions:
    params: FastTextParams = field(default_factory=lambda: dataclasses.replace(DEFAULT_PARAMS))
    name: str = ""
    quantize: bool = False
    autotune_s: int = 0                      # > 0: fastText autotune on the validation set for this long
    # Fewer passes over large sets (see scaled_epochs): on by default because it keeps 100k lines within
    # a minute on 2 cores with no loss on validation (bench/results/defaults-large-*); sets up to 12k
    # lines, where the defaults were chosen, are unaffected.
    scale_epochs: bool = True
    # Fewer hash buckets for small sets (see scaled_buckets): a 4x smaller model file that loads in a
    # quarter of the time, at the same validation score.
    scale_buckets: bool = True
    make_default: bool = True                # let the best-on-validation model serve


@dataclass
class TrainResult:
    model_id: int
    path: Path
    sha256: str
    train_s: float
    params: dict[str, Any]
    composition: dict[str, Any]
    validation: dict[str, Any] | None


def scaled_epochs(lines: int, epoch: int, *, reference_lines: int = 12_000, floor: int = 5) -> int:
    """Epochs for a large training set: as many line-passes as `epoch` passes over `reference_lines`.

    The default settings were chosen on ~12k lines; a 100k-line synthetic set gets 6 epochs instead of 50,
    which is what brings its training inside a minute on 2 cores (bench/results/defaults-large-*).
    """
    if lines <= reference_lines:
        return epoch
    return max(floor, round(epoch * reference_lines / lines))


SMALL_SET_LINES = 5_000
SMALL_SET_BUCKETS = 50_000


def scaled_buckets(lines: int, bucket: int) -> int:
    """Hash buckets for the word and character n-grams of a training set of `lines` lines.

    The buckets are most of a model's size (buckets x dim floats: 80 MB at 200k x 100), and fastText
    loads a model holding the GIL, so a big file is a visible pause when a coder is opened. A set of a
    few thousand short lines has far fewer distinct n-grams than 50k buckets: on NACE 10-11 (notes +
    768 synthetic, 958 lines) 50k buckets scored 50.0 % top-1 on the real-train half against 49.7 %
    for 200k. Larger sets keep the buckets they were tuned with (200k on full NACE).
    """
    return min(bucket, SMALL_SET_BUCKETS) if lines < SMALL_SET_LINES else bucket


def in_validation(text_key: str, share: float) -> bool:
    """A stable carve of the training side, salted so it is independent of the train/test split."""
    if share <= 0:
        return False
    bucket = int(hashlib.sha256(b"validation:" + text_key.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return bucket < share * 10_000


def leaf_codes_under(project: Project, tops: Sequence[str]) -> list[str]:
    """Leaf codes below (or equal to) any of the given codes, e.g. NACE divisions ['10', '11']."""
    wanted = set(tops)
    parent = dict(project.conn.execute("SELECT code, parent FROM codes"))
    out = []
    for (code,) in project.conn.execute("SELECT code FROM codes WHERE is_leaf ORDER BY ord"):
        node: str | None = code
        while node is not None and node not in wanted:
            node = parent.get(node)
        if node is not None:
            out.append(code)
    return out


def _code_filter(codes: list[str] | None) -> tuple[str, list[str]]:
    if codes is None:
        return "", []
    return f" AND code IN ({','.join('?' * len(codes))})", list(codes)


def build_training_data(project: Project, mix: DataMix) -> TrainingData:
    """The training pairs of a mix, with validation pairs carved from the real-train texts (never test)."""
    where, args = _code_filter(mix.codes)
    real = project.conn.execute(f"SELECT text, text_key, code FROM real_texts WHERE split = 'train'{where} ORDER BY id",
                                args).fetchall()
    if mix.validation_from not in ("real", "training"):
        raise TrainingError(f"validation_from must be 'real' or 'training', not '{mix.validation_from}'")
    real_share = mix.validation_share if real and mix.validation_from == "real" else 0.0
    validation = [(t, c) for t, k, c in real if in_validation(k, real_share)]
    real_train = [(t, c) for t, k, c in real if not in_validation(k, real_share)]
    by_source: dict[str, list[tuple[str, str]]] = {s: [] for s in SOURCES}
    if mix.notes:
        by_source["notes"] = list(notes_pairs(project, mix.codes))
    if mix.real:
        by_source["real"] = real_train
    if mix.synthetic:
        # The curated label where curation relabelled a sample (engine.curate.store).
        label = "COALESCE(curated_code, code)"
        sql = f"SELECT text, {label} FROM samples WHERE status = 'accepted'{where.replace('code', label)}"
        sargs = list(args)
        if mix.run_ids is not None:
            sql += f" AND run_id IN ({','.join('?' * len(mix.run_ids))})"
            sargs += list(mix.run_ids)
        by_source["synthetic"] = project.conn.execute(sql + " ORDER BY id", sargs).fetchall()
    if mix.augmented:
        # Augmented texts derive from real texts; only those of training-side, non-validation texts may train.
        rows = project.conn.execute(
            "SELECT a.text, a.code, r.text_key FROM augmented_texts a JOIN real_texts r ON r.id = a.real_id"
            f" WHERE r.split = 'train'{where.replace('code', 'a.code')} ORDER BY a.id", args).fetchall()
        by_source["augmented"] = [(t, c) for t, c, k in rows if not in_validation(k, real_share)]
    if not real_share and mix.validation_share > 0:
        # No real texts to validate on: carve the validation set out of the training pairs themselves.
        for source, pairs in by_source.items():
            validation += [p for p in pairs if in_validation(normalise_key(p[0]), mix.validation_share)]
            by_source[source] = [p for p in pairs if not in_validation(normalise_key(p[0]), mix.validation_share)]
    train: list[tuple[str, str]] = []
    for source in SOURCES:
        train.extend(by_source[source] * getattr(mix, source))
    if not train:
        raise TrainingError("the chosen data mix has no training texts")
    composition = {
        "weights": mix.weights(), "run_ids": mix.run_ids, "codes": mix.codes,
        "counts": {s: len(p) for s, p in by_source.items()},
        "train_lines": len(train), "validation": len(validation),
        "validation_from": "real-train" if real_share else "training data",
        "codes_trained": len({c for _, c in train}),
    }
    return TrainingData(train, validation, composition)


def cli_command() -> list[str]:
    """How to run our own CLI in a child process, from source or from the PyInstaller bundle.

    In the bundle sys.executable is `statcoder` or `statcoder-desktop`; both honour `-m engine`
    (packaging/launcher.py), whereas `[sys.executable]` alone would start a second GUI.
    """
    return [sys.executable, "-m", "engine"]


def _pump(stream, sink: "queue.Queue[bytes | None]") -> None:
    for chunk in iter(lambda: stream.read1(4096), b""):
        sink.put(chunk)
    sink.put(None)


def run_child_training(train_file: Path, output: Path, params: FastTextParams, *, quantize: bool = False,
                       validation_file: Path | None = None, autotune_s: int = 0,
                       progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> dict:
    """Train in a child `statcoder train fit`; report its progress; kill it on cancel. Returns its result."""
    args = [*cli_command(), "train", "fit", "--input", str(train_file), "--output", str(output),
            "--params", json.dumps(dataclasses.asdict(params))]
    if quantize:
        args.append("--quantize")
    if autotune_s > 0:
        if validation_file is None:
            raise TrainingError("autotune needs a validation set")
        args += ["--validation", str(validation_file), "--autotune-s", str(autotune_s)]
    meter = ProgressMeter(1000, progress)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_PID_ENV: str(os.getpid())})
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, env=env)
        chunks: "queue.Queue[bytes | None]" = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stderr, chunks), daemon=True).start()
        tail = b""
        log = b""
        reported = -1
        finished = False
        try:
            while not finished:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled(cancel.reason)
                try:
                    chunk = chunks.get(timeout=0.1)
                except queue.Empty:
                    continue
                if chunk is None:
                    finished = True
                    continue
                log = (log + chunk)[-8192:]
                tail = (tail + chunk)[-512:]
                found = _PROGRESS.findall(tail)
                if found and int(float(found[-1]) * 10) != reported:
                    reported = int(float(found[-1]) * 10)
                    meter.update(reported, "training")
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            for leftover in (output, output.with_suffix(output.suffix + ".tmp")):
                leftover.unlink(missing_ok=True)
            raise
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        message = log.decode("utf-8", "replace").replace("\r", "\n").strip().splitlines()
        raise TrainingError(f"fastText training failed (exit {proc.returncode}): "
                            + (message[-1] if message else "no output"))
    meter.update(1000, "trained", force=True)
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    raise TrainingError("the training process ended without a result")


def _exit_when_orphaned(interval_s: float = 0.5) -> None:
    """If the parent dies (killed GUI, closed terminal), stop training instead of running on unseen."""
    # The parent passes its pid: if it died before we got here, getppid() is already someone else.
    parent = int(os.environ.get(PARENT_PID_ENV) or os.getppid())

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="statcoder-orphan-watch", daemon=True).start()


def fit_in_this_process(input_file: Path, output: Path, params: dict, *, quantize: bool = False,
                        validation_file: Path | None = None, autotune_s: int = 0) -> dict:
    """The child's side: train with progress on stderr, save atomically, print the result line."""
    _exit_when_orphaned()
    kwargs = FastTextParams(**params).as_kwargs()
    kwargs["verbose"] = 2
    fixed = dict(kwargs)
    if autotune_s > 0 and validation_file is not None:
        kwargs.update(autotuneValidationFile=str(validation_file), autotuneDuration=int(autotune_s))
        for tuned in ("epoch", "lr", "wordNgrams", "minn", "maxn", "dim", "bucket", "loss"):
            kwargs.pop(tuned, None)
    start = time.perf_counter()
    model, retries = train_supervised(input_file, kwargs, fallback=fixed,
                                      log=lambda line: print(line, file=sys.stderr, flush=True))
    train_s = time.perf_counter() - start
    if quantize:
        # Keep the 100k most useful rows: a few MB instead of tens, at a small loss (see evaluation).
        model.quantize(input=str(input_file), qnorm=True, retrain=False, cutoff=100_000)
    tmp = output.with_suffix(output.suffix + ".tmp")
    model.save_model(str(tmp))
    os.replace(tmp, output)
    used = {name: getattr(model, name) for name in ("epoch", "lr", "wordNgrams", "minn", "maxn", "dim", "bucket")
            if hasattr(model, name)}
    used["loss"] = str(getattr(model, "loss", kwargs.get("loss", "softmax"))).split(".")[-1]
    result = {"train_s": round(train_s, 3), "total_s": round(time.perf_counter() - start, 3), "params": used,
              "labels": len(model.get_labels()), "nan_retries": retries}
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return result


def validate_model(coder: FastTextCoder, pairs: Sequence[tuple[str, str]], set_key: str) -> dict[str, Any] | None:
    if not pairs:
        return None
    preds = coder.predict_many([t for t, _ in pairs], 5)
    top1 = sum(bool(p) and p[0][0] == c for p, (_, c) in zip(preds, pairs)) / len(pairs)
    top5 = sum(c in {code for code, _ in p} for p, (_, c) in zip(preds, pairs)) / len(pairs)
    return {"set": set_key, "n": len(pairs), "top1": round(top1, 4), "top5": round(top5, 4)}


def _validation_key(pairs: Sequence[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for text, code in sorted(pairs):
        digest.update(f"{code}\t{text}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def train_model(project: Project, mix: DataMix, options: TrainOptions | None = None, *,
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> TrainResult:
    """Build the mix, train in a child process, validate, store the file and register the model."""
    options = options or TrainOptions()
    data = build_training_data(project, mix)
    folder = models_folder(project)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{threading.get_ident() % 10_000}"
    output = folder / f"fasttext-{stamp}.{'ftz' if options.quantize else 'bin'}"
    params = options.params
    if options.scale_epochs:
        params = dataclasses.replace(params, epoch=scaled_epochs(len(data.train), params.epoch))
    if options.scale_buckets:
        params = dataclasses.replace(params, bucket=scaled_buckets(len(data.train), params.bucket))
    with tempfile.TemporaryDirectory(prefix="statcoder-train-", dir=folder) as tmp:
        train_file, val_file = Path(tmp) / "train.txt", Path(tmp) / "validation.txt"
        write_training_file(data.train, train_file)
        if options.autotune_s > 0:
            if not data.validation:
                raise TrainingError("autotune needs validation texts; set a validation share above 0")
            write_training_file(data.validation, val_file)
        start = time.perf_counter()
        result = run_child_training(train_file, output, params, quantize=options.quantize,
                                    validation_file=val_file if options.autotune_s > 0 else None,
                                    autotune_s=options.autotune_s, progress=progress, cancel=cancel)
        wall_s = time.perf_counter() - start
    try:
        coder = FastTextCoder.load(output)
    except Exception as exc:
        raise ModelError(f"the trained model {output} could not be loaded: {exc}") from exc
    validation = validate_model(coder, data.validation, _validation_key(data.validation))
    sha = file_sha256(output)
    params_used = {**dataclasses.asdict(params), **result["params"], "quantized": options.quantize,
                   "autotune_s": options.autotune_s, "scale_epochs": options.scale_epochs,
                   "scale_buckets": options.scale_buckets}
    composition = {**data.composition, "per_code": dict(Counter(c for _, c in data.train)),
                   "fit_s": result["train_s"], "child_total_s": result["total_s"]}
    name = options.name or f"fastText {time.strftime('%Y-%m-%d %H:%M')}"
    with project.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO models (name, kind, path, sha256, params, data, train_s, validation)"
            " VALUES (?, 'fasttext', ?, ?, ?, ?, ?, ?)",
            (name, str(output.relative_to(project.path.parent)), sha, json.dumps(params_used), json.dumps(composition),
             round(wall_s, 3), json.dumps(validation) if validation else None))
        model_id = int(cur.lastrowid)
    if options.make_default:
        choose_default_model(project)
    return TrainResult(model_id=model_id, path=output, sha256=sha, train_s=wall_s, params=params_used,
                       composition=composition, validation=validation)
