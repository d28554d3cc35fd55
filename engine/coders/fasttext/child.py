"""fastText training in a child process: progress parsed from its output, cancel by killing it.

fastText's bindings have no progress callback and no abort, and hold the GIL while they train, so
training runs in `statcoder coders fit` (our own CLI, which also works inside the bundle). The child
saves the model to a temporary name, checks that the file holds every matrix it should (fastText's
save truncates silently on a full disk), and only then renames it into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from engine.childproc import child_env, cli_command, exit_when_orphaned, pump
from engine.coders.fasttext.bindings import FastTextParams, train_supervised
from engine.errors import Cancelled, TrainingError
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter

RESULT_MARKER = "STATCODER-TRAIN-RESULT "
_PROGRESS = re.compile(rb"Progress:\s*([0-9.]+)%")
FLOAT_BYTES = 4


def run_child_training(train_file: Path, output: Path, params: FastTextParams, *, quantize: bool = False,
                       validation_file: Path | None = None, autotune_s: int = 0,
                       progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> dict:
    """Train in a child `statcoder coders fit`; report its progress; kill it on cancel. Returns its result."""
    args = [*cli_command(), "coders", "fit", "--input", str(train_file), "--output", str(output),
            "--params", json.dumps(dataclasses.asdict(params))]
    if quantize:
        args.append("--quantize")
    if autotune_s > 0:
        if validation_file is None:
            raise TrainingError("autotune needs a validation set")
        args += ["--validation", str(validation_file), "--autotune-s", str(autotune_s)]
    meter = ProgressMeter(1000, progress)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, env=child_env())
        chunks: "queue.Queue[bytes | None]" = queue.Queue()
        threading.Thread(target=pump, args=(proc.stderr, chunks), daemon=True).start()
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
        output.with_suffix(output.suffix + ".tmp").unlink(missing_ok=True)
        message = log.decode("utf-8", "replace").replace("\r", "\n").strip().splitlines()
        raise TrainingError(f"fastText training failed (exit {proc.returncode}): "
                            + (message[-1] if message else "no output"))
    meter.update(1000, "trained", force=True)
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
            size = output.stat().st_size if output.exists() else 0
            if size != result.get("bytes", size):
                output.unlink(missing_ok=True)
                raise TrainingError(f"the model file {output.name} is {size:,} bytes, not the {result['bytes']:,} "
                                    "the trainer wrote; the disk may be full. Nothing was registered.")
            return result
    raise TrainingError("the training process ended without a result")


def minimum_model_bytes(model) -> int:
    """The bytes a saved model must at least hold: its input and output matrices (not quantised)."""
    rows_in, dim = model.get_input_matrix().shape
    rows_out = model.get_output_matrix().shape[0]
    return FLOAT_BYTES * dim * (rows_in + rows_out)


def save_verified(model, output: Path, *, quantized: bool) -> int:
    """Save through a temporary name, refuse a short file (a full disk), then rename. Returns the size."""
    tmp = output.with_suffix(output.suffix + ".tmp")
    try:
        model.save_model(str(tmp))
        size = tmp.stat().st_size
        needed = 1 if quantized else minimum_model_bytes(model)
        if size < needed:
            raise TrainingError(f"the model file was cut short ({size:,} of at least {needed:,} bytes): "
                                f"the disk holding {output.parent} is probably full. Nothing was registered.")
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def fit_in_this_process(input_file: Path, output: Path, params: dict, *, quantize: bool = False,
                        validation_file: Path | None = None, autotune_s: int = 0) -> dict:
    """The child's side: train with progress on stderr, save verified, print the result line."""
    exit_when_orphaned()
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
    size = save_verified(model, output, quantized=quantize)
    used = {name: getattr(model, name) for name in ("epoch", "lr", "wordNgrams", "minn", "maxn", "dim", "bucket")
            if hasattr(model, name)}
    used["loss"] = str(getattr(model, "loss", kwargs.get("loss", "softmax"))).split(".")[-1]
    result = {"train_s": round(train_s, 3), "total_s": round(time.perf_counter() - start, 3), "params": used,
              "labels": len(model.get_labels()), "nan_retries": retries, "bytes": size}
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return result
