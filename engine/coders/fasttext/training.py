"""Train a fastText coder on a data mix: options, scaled defaults, disk check, child training, registration."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.coders.base import TrainedModel
from engine.coders.data import DataMix, TrainingData, build_training_data, score_validation
from engine.coders.fasttext.bindings import FastTextParams, preprocess, write_training_file
from engine.coders.fasttext.child import FLOAT_BYTES, run_child_training
from engine.coders.fasttext.model import FastTextCoder
from engine.coders.registry import clean_orphans, model_file, models_folder, register_model, scratch_prefix
from engine.errors import ModelError, TrainingError
from engine.jobs import CancelToken, ProgressCallback
from engine.store.project import Project

# The benchmark's settings (BENCHMARK.md) except the hash-bucket count: fastText's 2M buckets make an
# 800 MB model that takes seconds to load, and 200k scored the same on the validation split
# (bench/results/defaults-validation.md), at 80 MB.
DEFAULT_PARAMS = FastTextParams(bucket=200_000, thread=2)


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


def needed_bytes(data: TrainingData, params: FastTextParams) -> int:
    """A generous estimate of the disk a training needs: the model's matrices and the training files."""
    words = len({w for text, _ in data.train for w in preprocess(text).split()})
    labels = len({c for _, c in data.train})
    model = FLOAT_BYTES * params.dim * (words + params.bucket + labels)
    text = sum(len(t) + len(c) + 12 for t, c in data.train + data.validation)
    return int(1.2 * model + 2 * text) + (8 << 20)


def check_disk_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise TrainingError(f"not enough disk space in {folder}: training needs about {needed / 1e6:,.0f} MB, "
                            f"{free / 1e6:,.0f} MB are free. Free some space and train again; nothing was changed.")


def train_fasttext(project: Project, mix: DataMix, options: TrainOptions | None = None, *,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> TrainedModel:
    """Build the mix, train in a child process, verify and validate the file, register the model."""
    options = options or TrainOptions()
    data = build_training_data(project, mix)
    clean_orphans(project)
    params = options.params
    if options.scale_epochs:
        params = dataclasses.replace(params, epoch=scaled_epochs(len(data.train), params.epoch))
    if options.scale_buckets:
        params = dataclasses.replace(params, bucket=scaled_buckets(len(data.train), params.bucket))
    folder = models_folder(project)
    folder.mkdir(parents=True, exist_ok=True)
    check_disk_space(folder, needed_bytes(data, params))
    output = model_file(project, "fasttext", ".ftz" if options.quantize else ".bin")
    try:
        with tempfile.TemporaryDirectory(prefix=scratch_prefix(), dir=output.parent) as tmp:
            train_file, val_file = Path(tmp) / "train.txt", Path(tmp) / "validation.txt"
            write_training_file(data.train, train_file, data.labels_of(mix.hierarchy_smoothing))
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
        validation = score_validation(coder.predict_many([t for t, _ in data.validation], 5), data.validation)
        params_used = {**dataclasses.asdict(params), **result["params"], "quantized": options.quantize,
                       "autotune_s": options.autotune_s, "scale_epochs": options.scale_epochs,
                       "scale_buckets": options.scale_buckets}
        composition = {**data.composition, "per_code": dict(Counter(c for _, c in data.train)),
                       "fit_s": result["train_s"], "child_total_s": result["total_s"]}
        name = options.name or f"fastText {time.strftime('%Y-%m-%d %H:%M')}"
        record, made_default, warnings = register_model(
            project, kind="fasttext", name=name, path=output, params=params_used, data=composition,
            train_s=wall_s, validation=validation, make_default=options.make_default)
    except OSError as exc:
        output.unlink(missing_ok=True)
        raise TrainingError(f"training could not write to {output.parent}: {exc.strerror or exc}") from exc
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return TrainedModel(model_id=record.id, kind="fasttext", name=name, path=output, sha256=record.sha256,
                        train_s=wall_s, params=params_used, composition=composition, validation=validation,
                        made_default=made_default, warnings=warnings)
