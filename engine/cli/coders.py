"""Commands for coders (trained classifiers): train any kind on a data mix, list them, choose the serving one."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from engine.classification import leaf_codes_under
from engine.evaluate.compare import serving_after_training
from engine.cli.common import (cli, echo_json, json_option, open_project, progress_printer, project_option,
                               warn_uncurated)
from engine.coders.base import TrainedModel
from engine.coders.data import DataMix
from engine.coders.embedding.training import EmbeddingTrainOptions
from engine.coders.fasttext.bindings import FastTextParams
from engine.coders.fasttext.child import fit_in_this_process
from engine.coders.fasttext.serve import serve
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions
from engine.coders.registry import default_model_id, list_models, set_default_model
from engine.coders.train import KINDS, train_coder
from engine.store.project import Project


@cli.group("coders")
def coders() -> None:
    """Coders: classifiers trained on notes, synthetic and real texts (fastText, embeddings, their ensemble)."""


def mix_options(fn):
    """The data-mix options every coder kind shares."""
    for option in reversed([
        click.option("--notes", "w_notes", type=int, default=1, show_default=True, help="Weight (repetitions) of notes lines; 0 = none."),
        click.option("--synthetic", "w_synthetic", type=int, default=0, show_default=True, help="Weight of accepted synthetic samples."),
        click.option("--real", "w_real", type=int, default=0, show_default=True, help="Weight of real-train texts."),
        click.option("--augmented", "w_augmented", type=int, default=0, show_default=True, help="Weight of augmented texts."),
        click.option("--pseudo", "w_pseudo", type=int, default=0, show_default=True,
                     help="Weight of pseudo-labelled uncoded texts (`statcoder label`)."),
        click.option("--run-id", "run_ids", type=int, multiple=True, help="Synthetic samples from these generation runs only."),
        click.option("--subset", default="", help="Only leaf codes under these codes, e.g. 10,11."),
        click.option("--validation-share", type=float, default=0.1, show_default=True,
                     help="Share of real-train texts held out for validation (never the test split)."),
        click.option("--hierarchy-smoothing", type=float, default=0.0, show_default=True,
                     help="Hierarchy-aware training: give this share of each text's label to its code's leaf "
                          "siblings (label smoothing towards the parent; 0 = off)."),
        click.option("--redirected-notes/--own-notes-only", "redirected_notes", default=True, show_default=True,
                     help="Notes lines also include the excluded activities other codes' notes send to each code "
                          "('growing of rice, see 01.12' trains 01.12)."),
    ]):
        fn = option(fn)
    return fn


def fasttext_options(fn):
    for option in reversed([
        click.option("--epoch", type=int, default=DEFAULT_PARAMS.epoch, show_default=True),
        click.option("--lr", type=float, default=DEFAULT_PARAMS.lr, show_default=True),
        click.option("--dim", type=int, default=DEFAULT_PARAMS.dim, show_default=True),
        click.option("--word-ngrams", type=int, default=DEFAULT_PARAMS.wordNgrams, show_default=True),
        click.option("--bucket", type=int, help=f"Hash buckets (default {DEFAULT_PARAMS.bucket:,}; sets under 5,000 "
                                                "lines get 50,000 unless given)."),
        click.option("--threads", type=int, default=DEFAULT_PARAMS.thread, show_default=True),
        click.option("--autotune", "autotune_s", type=int, default=0, help="Autotune on the validation set for N seconds."),
        click.option("--scale-epochs/--all-epochs", default=True, show_default=True,
                     help="Fewer epochs for sets above 12k lines (same line-passes): 100k lines train in about a minute."),
        click.option("--quantize", is_flag=True, help="Write a quantised .ftz model (small, slightly less accurate)."),
    ]):
        fn = option(fn)
    return fn


# The keyword arguments mix_options adds, which build_mix takes.
MIX_KEYS = ("w_notes", "w_synthetic", "w_real", "w_augmented", "w_pseudo", "run_ids", "subset", "validation_share",
            "hierarchy_smoothing", "redirected_notes")


def build_mix(project: Project, *, w_notes: int, w_synthetic: int, w_real: int, w_augmented: int,
              run_ids: tuple[int, ...], subset: str, validation_share: float, w_pseudo: int = 0,
              hierarchy_smoothing: float = 0.0, redirected_notes: bool = True) -> DataMix:
    tops = [s.strip() for s in subset.split(",") if s.strip()]
    mix = DataMix(notes=w_notes, synthetic=w_synthetic, real=w_real, augmented=w_augmented, pseudo=w_pseudo,
                  run_ids=list(run_ids) or None, codes=leaf_codes_under(project, tops) if tops else None,
                  validation_share=validation_share, hierarchy_smoothing=hierarchy_smoothing,
                  redirected_notes=redirected_notes)
    warn_uncurated(project, mix)
    return mix


def fasttext_train_options(*, epoch: int, lr: float, dim: int, word_ngrams: int, bucket: int | None, threads: int,
                           autotune_s: int, scale_epochs: bool, quantize: bool) -> TrainOptions:
    params = dataclasses.replace(DEFAULT_PARAMS, epoch=epoch, lr=lr, dim=dim, wordNgrams=word_ngrams,
                                 bucket=bucket or DEFAULT_PARAMS.bucket, thread=threads)
    return TrainOptions(params=params, quantize=quantize, autotune_s=autotune_s, scale_epochs=scale_epochs,
                        scale_buckets=bucket is None)


def report_trained(result: TrainedModel, *, as_json: bool) -> None:
    composition = {k: v for k, v in result.composition.items() if k != "per_code"}
    if as_json:
        echo_json({"model_id": result.model_id, "kind": result.kind, "path": str(result.path), "sha256": result.sha256,
                   "train_s": round(result.train_s, 3), "validation": result.validation, "default": result.made_default,
                   "warnings": result.warnings, "composition": composition,
                   **({"weights": result.params["weights"], "title_heads": result.params.get("title_heads")}
                      if result.kind == "ensemble" else {}),
                   **({"cache": composition["cache"]} if "cache" in composition else {})})
        return
    click.echo("", err=True)
    val = result.validation
    lines = composition.get("train_lines")
    click.echo(f"model {result.model_id} ({result.kind}): " + (f"{lines} lines, " if lines else "")
               + f"{result.train_s:.1f}s, {result.path.name}"
               + (f"; validation top-1 {val['top1']:.1%}, top-5 {val['top5']:.1%} on {val['n']} texts" if val else "")
               + ("; now the default" if result.made_default else ""))
    if result.kind == "ensemble":
        click.echo(f"weights ({result.params.get('combination', 'mean')}, {result.params.get('weights_from', 'validation')}): "
                   + ", ".join(f"{k} {v:g}" for k, v in result.params["weights"].items()))
        heads = result.params.get("title_heads")
        if heads is not None and result.params.get("combination") == "log":
            setting = f"weight {heads['beta']:g}" if heads["beta"] else "off"
            click.echo(f"title heads: {setting}" + (f" ({heads['from']})" if heads["from"] != "off" else ""))
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)


@coders.command("train")
@project_option
@click.option("--kind", type=click.Choice(KINDS), default="fasttext", show_default=True,
              help="fasttext; embedding (sentence embeddings + logistic regression); knn (semantic search over the "
                   "training texts); lexical (BM25 over each code's pooled training lines); ensemble (kNN x "
                   "embeddings x fastText x lexical, weights chosen on validation).")
@mix_options
@fasttext_options
@click.option("--embedding-model", "embedding_model", type=click.Path(exists=True, dir_okay=False),
              help="A GGUF sentence-embedding model (embedding, knn, ensemble); default: the shipped all-MiniLM-L6-v2.")
@click.option("--member", "members", type=int, multiple=True,
              help="Ensemble: coders already trained on the same mix (default: train them now).")
@click.option("--combination", type=click.Choice(["log", "mean"]), default="log", show_default=True,
              help="Ensemble: 'log' weighs the members' log-probabilities (any number of members; without real "
                   "text the weights chosen on all of NACE); 'mean' averages two members' probabilities.")
@click.option("--heads", type=click.FloatRange(min=0), default=None,
              help="Ensemble ('log'): the weight of the title heads (a text that says 'wholesale' moves toward the "
                   "codes whose titles lead with it); 0 turns them off. Default: on where the classification's "
                   "titles lead with the activity (NACE), chosen on real validation texts when there are some.")
@click.option("--name", default="", help="A name for the coder.")
@click.option("--no-default", is_flag=True, help="Do not let this coder become the serving one.")
@json_option
def coders_train(project_path: str, kind: str, embedding_model: str | None, members: tuple[int, ...],
                 combination: str, heads: float | None, name: str, no_default: bool, as_json: bool,
                 **options) -> None:
    """Train a coder on a mix of notes, synthetic, real-train and augmented texts."""
    project = open_project(project_path, write=True)
    mix = build_mix(project, **{k: options.pop(k) for k in MIX_KEYS})
    previous = default_model_id(project)
    result = train_coder(project, mix, kind=kind, name=name, make_default=not no_default,
                         fasttext=fasttext_train_options(**options),
                         embedding=EmbeddingTrainOptions(model_path=embedding_model),
                         members=list(members) or None, combination=combination, heads=heads,
                         progress=None if as_json else progress_printer())
    if not no_default:
        # A coder validated on texts of its own (other codes) would serve whatever it scored: compare it
        # with the serving one on the validation texts both know.
        serving = serving_after_training(project, result.model_id, previous)
        result = dataclasses.replace(result, made_default=serving.replaced)
        if serving.kept_better:
            result.warnings.append(serving.message + f" Use `statcoder coders default {result.model_id}` to "
                                   "serve the new one anyway.")
    report_trained(result, as_json=as_json)


@coders.command("list")
@project_option
@json_option
def coders_list(project_path: str, as_json: bool) -> None:
    """List the project's coders; the one that serves suggestions is marked with *."""
    project = open_project(project_path)
    default = default_model_id(project)
    models = list_models(project)
    if as_json:
        echo_json([{"id": m.id, "name": m.name, "kind": m.kind, "path": str(m.path), "sha256": m.sha256,
                    "train_s": m.train_s, "validation": m.validation, "codes_trained": m.codes_trained,
                    "default": m.id == default} for m in models])
        return
    if not models:
        click.echo("no coders yet; `statcoder coders train -p PROJECT --real 1` trains one")
    for m in models:
        val = f"val top-1 {m.validation['top1']:.1%}" if m.validation else "no validation"
        codes = f"{m.codes_trained} codes" if m.codes_trained else ""
        click.echo(f"{'*' if m.id == default else ' '} {m.id:>4}  {m.kind:<10} {m.name:<30} {val:<18} {codes:<10} {m.path.name}")


@coders.command("default")
@project_option
@click.argument("model_id", type=int)
def coders_default(project_path: str, model_id: int) -> None:
    """Make MODEL_ID the coder that serves suggestions and batch coding."""
    project = open_project(project_path)
    set_default_model(project, model_id)
    click.echo(f"coder {model_id} now serves suggestions")


@coders.command("fit", hidden=True)
@click.option("--input", "input_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", required=True, type=click.Path(dir_okay=False))
@click.option("--params", "params_json", required=True, help="FastTextParams as JSON.")
@click.option("--quantize", is_flag=True)
@click.option("--validation", "validation_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--autotune-s", type=int, default=0)
def coders_fit(input_file: str, output: str, params_json: str, quantize: bool, validation_file: str | None,
               autotune_s: int) -> None:
    """Train one fastText model from a prepared file (the child process of training; progress on stderr)."""
    params = json.loads(params_json)
    known = {f.name for f in dataclasses.fields(FastTextParams)}
    fit_in_this_process(Path(input_file), Path(output), {k: v for k, v in params.items() if k in known},
                        quantize=quantize, validation_file=Path(validation_file) if validation_file else None,
                        autotune_s=autotune_s)


@coders.command("serve", hidden=True)
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
def coders_serve(model_file: str) -> None:
    """Serve predictions of a fastText model over stdin/stdout (the desktop app's child process)."""
    sys.exit(serve(model_file))
