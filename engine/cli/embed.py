"""Commands for sentence embeddings: embed texts (cosine between them) and the project's vector cache.

Embedding coders are trained with `statcoder coders train --kind embedding`."""

from __future__ import annotations

import click

from engine.coders.embedding.cache import cache_size, clear_cache, embed_cached
from engine.coders.embedding.model import load_embedding_model
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


@cli.group("embed")
def embed() -> None:
    """Sentence embeddings (MiniLM or any GGUF embedding model) and their cache."""


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
