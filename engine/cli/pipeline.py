"""`statcoder pipeline`: the main job, from an empty folder to a working coder."""

from __future__ import annotations

from pathlib import Path

import click

from engine.pipeline import PipelineOptions, run_pipeline
from engine.realdata.importing import PRESETS
from engine.cli.common import cli


@cli.command("pipeline")
@click.argument("path", type=click.Path(dir_okay=False), default="statcoder-demo.statcoder")
@click.option("--classification", default="nace2", show_default=True, help="Built-in classification.")
@click.option("--real", type=click.Choice(sorted(PRESETS)), default="uksic-index", show_default=True,
              help="Built-in coded texts (their test half is only ever used for evaluation).")
@click.option("--divisions", default="10,11", show_default=True,
              help="Limit every stage to the codes under these top codes; '' for the whole classification.")
@click.option("--quota", default=12, show_default=True, help="Synthetic samples per code.")
@click.option("--seed", default=1, show_default=True)
@click.option("--model", help="A registered model (name or sha256) or a GGUF path; default: the default model.")
@click.option("--threads", type=int, help="CPU threads for the LLM (default 2, which suits a 2-core office PC).")
def pipeline(path: str, classification: str, real: str, divisions: str, quota: int, seed: int,
             model: str | None, threads: int | None) -> None:
    """Run the whole workflow on a project at PATH (created if missing; re-running resumes).

    Imports the classification and coded texts, generates synthetic texts with the local LLM,
    curates them, trains fastText, embedding and ensemble coders, evaluates them on the real test
    half and makes the best one on validation serve suggestions.
    """
    run_pipeline(PipelineOptions(project=Path(path), classification=classification, real=real,
                                 divisions=[d.strip() for d in divisions.split(",") if d.strip()], quota=quota,
                                 seed=seed, model=model, threads=threads), log=click.echo)
