"""Commands for the embedding coder: embed texts, train embedding and ensemble coders, inspect the cache."""

from __future__ import annotations

import click

from engine.coders.embedding import (EmbeddingTrainOptions, cache_size, clear_cache, embed_cached, load_embedding_model,
                     train_embedding_model, train_ensemble)
from engine.jobs import ProgressInfo
from engine.coders.training import DataMix, leaf_codes_under
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


@cli.group("embed")
def embed() -> None:
    """Sentence-embedding coders (MiniLM or any GGUF embedding model) and their cache."""


def _progress(info: ProgressInfo) -> None:
    eta = f", ETA {info.eta_s:.0f}s" if info.eta_s is not None else ""
    click.echo(f"\r{info.message}: {info.fraction:6.1%}{eta}   ", nl=False, err=True)


def _mix_options(fn):
    for option in reversed([
        click.option("--notes", "w_notes", type=int, default=1, show_default=True, help="Weight of notes lines; 0 = none."),
        click.option("--synthetic", "w_synthetic", type=int, default=0, show_default=True, help="Weight of accepted synthetic samples."),
        click.option("--real", "w_real", type=int, default=0, show_default=True, help="Weight of real-train texts."),
        click.option("--augmented", "w_augmented", type=int, default=0, show_default=True, help="Weight of augmented texts."),
        click.option("--run-id", "run_ids", type=int, multiple=True, help="Synthetic samples from these runs only."),
        click.option("--subset", default="", help="Only leaf codes under these codes, e.g. 10,11."),
        click.option("--validation-share", type=float, default=0.1, show_default=True,
                     help="Share of real-train texts held out to choose C, temperature and weights."),
    ]):
        fn = option(fn)
    return fn


def _mix(project, w_notes, w_synthetic, w_real, w_augmented, run_ids, subset, validation_share) -> DataMix:
    tops = [s.strip() for s in subset.split(",") if s.strip()]
    return DataMix(notes=w_notes, synthetic=w_synthetic, real=w_real, augmented=w_augmented,
                   run_ids=list(run_ids) or None, codes=leaf_codes_under(project, tops) if tops else None,
                   validation_share=validation_share)


@embed.command("train")
@project_option
@_mix_options
@click.option("--mode", type=click.Choice(["lr", "knn"]), default="lr", show_default=True,
              help="lr: logistic regression on embeddings; knn: nearest training text per code (semantic search).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="A GGUF sentence-embedding model; default: the shipped all-MiniLM-L6-v2.")
@click.option("--name", default="", help="A name for the coder.")
@click.option("--no-default", is_flag=True, help="Do not let this coder become the default one.")
@json_option
def embed_train(project_path: str, w_notes: int, w_synthetic: int, w_real: int, w_augmented: int,
                run_ids: tuple[int, ...], subset: str, validation_share: float, mode: str, model_path: str | None,
                name: str, no_default: bool, as_json: bool) -> None:
    """Train an embedding coder on a data mix (texts already embedded come from the project's cache)."""
    project = open_project(project_path)
    mix = _mix(project, w_notes, w_synthetic, w_real, w_augmented, run_ids, subset, validation_share)
    result = train_embedding_model(project, mix, EmbeddingTrainOptions(mode=mode, model_path=model_path, name=name,
                                                                       make_default=not no_default),
                                   progress=None if as_json else _progress)
    summary = {"model_id": result.model_id, "path": str(result.path), "sha256": result.sha256,
               "train_s": round(result.train_s, 3), "validation": result.validation,
               "cache": vars(result.cache), "fit": {k: v for k, v in result.params["fit"].items() if k != "c_grid"}}
    if as_json:
        echo_json(summary)
        return
    click.echo("", err=True)
    val = result.validation
    click.echo(f"model {result.model_id} ({mode}): {result.composition['train_lines']} lines, {result.train_s:.1f}s, "
               f"{result.cache.embedded} texts embedded, {result.cache.hits} from the cache"
               + (f"; validation top-1 {val['top1']:.1%}, top-5 {val['top5']:.1%} on {val['n']} texts" if val else ""))


@embed.command("ensemble")
@project_option
@_mix_options
@click.option("--fasttext", "fasttext_id", type=int, help="A fastText model trained on the same mix; default: train one.")
@click.option("--embedding", "embedding_id", type=int, help="An embedding model trained on the same mix; default: train one.")
@click.option("--name", default="")
@click.option("--no-default", is_flag=True)
@json_option
def embed_ensemble(project_path: str, w_notes: int, w_synthetic: int, w_real: int, w_augmented: int,
                   run_ids: tuple[int, ...], subset: str, validation_share: float, fasttext_id: int | None,
                   embedding_id: int | None, name: str, no_default: bool, as_json: bool) -> None:
    """Combine fastText and an embedding coder; the weight is chosen on the mix's validation texts."""
    project = open_project(project_path)
    mix = _mix(project, w_notes, w_synthetic, w_real, w_augmented, run_ids, subset, validation_share)
    model_id, info = train_ensemble(project, mix, fasttext_id=fasttext_id, embedding_id=embedding_id, name=name,
                                    make_default=not no_default)
    if as_json:
        echo_json({"model_id": model_id, **info})
        return
    val = info["validation"]
    click.echo(f"model {model_id} (ensemble): fastText weight {info['weights']['fasttext']:.1f}; validation top-1 "
               f"{val['top1']:.1%}, top-5 {val['top5']:.1%} on {val['n']} texts")


@embed.command("text")
@project_option
@click.argument("texts", nargs=-1, required=True)
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF embedding model.")
@json_option
def embed_text(project_path: str, texts: tuple[str, ...], model_path: str | None, as_json: bool) -> None:
    """Embed TEXTS (cached in the project) and print the first values and the cosine between them."""
    project = open_project(project_path)
    model = load_embedding_model(model_path)
    vectors = embed_cached(project, model, list(texts))
    if as_json:
        echo_json({"model": vars(model.info), "vectors": [[round(float(v), 6) for v in row] for row in vectors]})
        return
    click.echo(f"{model.name} ({model.dim} dims, {model.pooling} pooling, sha256 {model.sha256[:12]}...)")
    for text, row in zip(texts, vectors):
        click.echo(f"{text!r}: [{', '.join(f'{v:.4f}' for v in row[:4])}, ...]")
    for i in range(1, len(texts)):
        click.echo(f"cosine({texts[0]!r}, {texts[i]!r}) = {float(vectors[0] @ vectors[i]):.4f}")


@embed.command("cache")
@project_option
@click.option("--clear", is_flag=True, help="Delete every cached vector.")
@json_option
def embed_cache(project_path: str, clear: bool, as_json: bool) -> None:
    """How many vectors the project caches (or --clear them)."""
    project = open_project(project_path)
    removed = clear_cache(project) if clear else 0
    rows = project.conn.execute("SELECT model_sha256, COUNT(*) FROM embedding_cache GROUP BY model_sha256").fetchall()
    if as_json:
        echo_json({"removed": removed, "total": cache_size(project), "by_model": dict(rows)})
        return
    if clear:
        click.echo(f"removed {removed} cached vectors")
    click.echo(f"{cache_size(project)} cached vectors" + "".join(f"\n  {sha[:12]}...: {n}" for sha, n in rows))
