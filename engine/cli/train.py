"""Commands for training: fit a fastText model from a data mix (in a child process), list models, pick the default."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from engine.coders.base import list_models, set_default_model, default_model_id
from engine.coders.fasttext.model import FastTextParams
from engine.jobs import ProgressInfo
from engine.coders.training import DEFAULT_PARAMS, DataMix, TrainOptions, fit_in_this_process, leaf_codes_under, train_model
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


@cli.group("train")
def train() -> None:
    """Train coders and manage the project's models."""


def _progress(info: ProgressInfo) -> None:
    eta = f", ETA {info.eta_s:.0f}s" if info.eta_s is not None else ""
    click.echo(f"\r{info.message}: {info.fraction:6.1%}{eta}   ", nl=False, err=True)


@train.command("run")
@project_option
@click.option("--notes", "w_notes", type=int, default=1, show_default=True, help="Weight (repetitions) of notes lines; 0 = none.")
@click.option("--synthetic", "w_synthetic", type=int, default=0, show_default=True, help="Weight of accepted synthetic samples.")
@click.option("--real", "w_real", type=int, default=0, show_default=True, help="Weight of real-train texts.")
@click.option("--augmented", "w_augmented", type=int, default=0, show_default=True, help="Weight of augmented texts.")
@click.option("--run-id", "run_ids", type=int, multiple=True, help="Synthetic samples from these generation runs only.")
@click.option("--subset", default="", help="Only leaf codes under these codes, e.g. 10,11.")
@click.option("--validation-share", type=float, default=0.1, show_default=True,
              help="Share of real-train texts held out for validation (never the test split).")
@click.option("--epoch", type=int, default=DEFAULT_PARAMS.epoch, show_default=True)
@click.option("--lr", type=float, default=DEFAULT_PARAMS.lr, show_default=True)
@click.option("--dim", type=int, default=DEFAULT_PARAMS.dim, show_default=True)
@click.option("--word-ngrams", type=int, default=DEFAULT_PARAMS.wordNgrams, show_default=True)
@click.option("--bucket", type=int, help=f"Hash buckets (default {DEFAULT_PARAMS.bucket:,}; sets under 5,000 lines "
                                         "get 50,000 unless given).")
@click.option("--threads", type=int, default=DEFAULT_PARAMS.thread, show_default=True)
@click.option("--autotune", "autotune_s", type=int, default=0, help="Autotune on the validation set for N seconds.")
@click.option("--scale-epochs/--all-epochs", default=True, show_default=True,
              help="Fewer epochs for sets above 12k lines (same line-passes): 100k lines train in about a minute.")
@click.option("--quantize", is_flag=True, help="Write a quantised .ftz model (small, slightly less accurate).")
@click.option("--name", default="", help="A name for the model.")
@click.option("--no-default", is_flag=True, help="Do not let this model become the default one.")
@json_option
def train_run(project_path: str, w_notes: int, w_synthetic: int, w_real: int, w_augmented: int, run_ids: tuple[int, ...],
              subset: str, validation_share: float, epoch: int, lr: float, dim: int, word_ngrams: int, bucket: int | None,
              threads: int, autotune_s: int, scale_epochs: bool, quantize: bool, name: str, no_default: bool, as_json: bool) -> None:
    """Train a fastText coder on a mix of notes, synthetic, real-train and augmented texts."""
    project = open_project(project_path)
    tops = [s.strip() for s in subset.split(",") if s.strip()]
    mix = DataMix(notes=w_notes, synthetic=w_synthetic, real=w_real, augmented=w_augmented,
                  run_ids=list(run_ids) or None, codes=leaf_codes_under(project, tops) if tops else None,
                  validation_share=validation_share)
    params = dataclasses.replace(DEFAULT_PARAMS, epoch=epoch, lr=lr, dim=dim, wordNgrams=word_ngrams,
                                 bucket=bucket or DEFAULT_PARAMS.bucket, thread=threads)
    result = train_model(project, mix, TrainOptions(params=params, name=name, quantize=quantize,
                                                    autotune_s=autotune_s, scale_epochs=scale_epochs,
                                                    scale_buckets=bucket is None, make_default=not no_default),
                         progress=None if as_json else _progress)
    if as_json:
        echo_json({"model_id": result.model_id, "path": str(result.path), "sha256": result.sha256,
                   "train_s": result.train_s, "validation": result.validation,
                   "composition": {k: v for k, v in result.composition.items() if k != "per_code"}})
        return
    click.echo("", err=True)
    val = result.validation
    click.echo(f"model {result.model_id}: {result.composition['train_lines']} lines, {result.train_s:.1f}s, "
               f"{result.path.name}" + (f"; validation top-1 {val['top1']:.1%}, top-5 {val['top5']:.1%} on {val['n']} texts"
                                         if val else ""))


@train.command("fit")
@click.option("--input", "input_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", required=True, type=click.Path(dir_okay=False))
@click.option("--params", "params_json", required=True, help="FastTextParams as JSON.")
@click.option("--quantize", is_flag=True)
@click.option("--validation", "validation_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--autotune-s", type=int, default=0)
def train_fit(input_file: str, output: str, params_json: str, quantize: bool, validation_file: str | None,
              autotune_s: int) -> None:
    """Train one fastText model from a prepared file (the child process of `train run`; progress on stderr)."""
    params = json.loads(params_json)
    known = {f.name for f in dataclasses.fields(FastTextParams)}
    fit_in_this_process(Path(input_file), Path(output), {k: v for k, v in params.items() if k in known},
                        quantize=quantize, validation_file=Path(validation_file) if validation_file else None,
                        autotune_s=autotune_s)


@train.command("serve", hidden=True)
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
def train_serve(model_file: str) -> None:
    """Serve predictions of a fastText model over stdin/stdout (the desktop app's child process)."""
    from engine.coders.fasttext.serve import serve

    sys.exit(serve(model_file))


@train.command("list")
@project_option
@json_option
def train_list(project_path: str, as_json: bool) -> None:
    """List the project's models; the default one is marked with *."""
    project = open_project(project_path)
    default = default_model_id(project)
    models = list_models(project)
    if as_json:
        echo_json([{"id": m.id, "name": m.name, "kind": m.kind, "path": str(m.path), "sha256": m.sha256,
                    "train_s": m.train_s, "validation": m.validation, "default": m.id == default} for m in models])
        return
    for m in models:
        val = f"val top-1 {m.validation['top1']:.1%}" if m.validation else "no validation"
        click.echo(f"{'*' if m.id == default else ' '} {m.id:>4}  {m.kind:<10} {m.name:<30} {val}  {m.path.name}")


@train.command("default")
@project_option
@click.argument("model_id", type=int)
def train_default(project_path: str, model_id: int) -> None:
    """Make MODEL_ID the model that serves suggestions and batch coding."""
    project = open_project(project_path)
    set_default_model(project, model_id)
    click.echo(f"model {model_id} is now the default")
