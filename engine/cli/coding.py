"""Commands for coding: suggest codes for a text, batch-code a CSV, record a decision."""

from __future__ import annotations

import click

from engine.assist.coding import batch_code_csv, record_decision, suggest
from engine.jobs import ProgressInfo
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


@cli.group("code")
def code() -> None:
    """Code texts with the project's default (or a chosen) model."""


@code.command("suggest")
@project_option
@click.argument("text")
@click.option("-k", type=int, default=5, show_default=True, help="How many codes.")
@click.option("--model", "model_id", type=int, help="Model id (default: the project's default model).")
@json_option
def code_suggest(project_path: str, text: str, k: int, model_id: int | None, as_json: bool) -> None:
    """Suggest the K most likely codes for TEXT."""
    project = open_project(project_path)
    found = suggest(project, text, k, model_id)
    if as_json:
        echo_json([{"code": s.code, "probability": s.probability, "title": s.title,
                    "path": [list(p) for p in s.path]} for s in found])
        return
    for s in found:
        click.echo(f"{s.probability:6.1%}  {s.code:<10} {s.title}  [{' > '.join(c for c, _ in s.path)}]")


def _progress(info: ProgressInfo) -> None:
    click.echo(f"\rcoded {info.done}/{info.total} rows", nl=False, err=True)


@code.command("batch")
@project_option
@click.argument("in_path", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_path", type=click.Path(dir_okay=False))
@click.option("--text-column", required=True, help="The column holding the texts.")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Auto-code rows whose top probability is at least this; the rest go to review.")
@click.option("--model", "model_id", type=int, help="Model id (default: the project's default model).")
@click.option("--encoding", default="utf-8", show_default=True)
@json_option
def code_batch(project_path: str, in_path: str, out_path: str, text_column: str, threshold: float,
               model_id: int | None, encoding: str, as_json: bool) -> None:
    """Code every row of IN_PATH (CSV) into OUT_PATH with code, confidence, model_version and status."""
    project = open_project(project_path)
    result = batch_code_csv(project, in_path, out_path, text_column=text_column, threshold=threshold,
                            model=model_id, encoding=encoding, progress=None if as_json else _progress)
    if as_json:
        echo_json({"rows": result.rows, "auto": result.auto, "review": result.review, "empty": result.empty,
                   "seconds": result.seconds, "rows_per_s": result.rows_per_s, "model_version": result.model_version})
        return
    click.echo("", err=True)
    click.echo(f"{result.rows} rows: {result.auto} auto-coded, {result.review} for review "
               f"({result.rows_per_s:.0f} rows/s) -> {result.out_path}")


@code.command("decide")
@project_option
@click.argument("text")
@click.argument("chosen")
@click.option("--suggested", help="The code the model suggested (same as CHOSEN = a confirmation).")
@click.option("--model", "model_id", type=int)
@click.option("--confidence", type=float)
def code_decide(project_path: str, text: str, chosen: str, suggested: str | None, model_id: int | None,
                confidence: float | None) -> None:
    """Record that TEXT was coded CHOSEN; it joins the real training texts for the next model."""
    project = open_project(project_path)
    decision = record_decision(project, text, suggested, chosen, model_id=model_id, confidence=confidence)
    click.echo(f"recorded {decision.kind} {decision.correction_id}"
               + ("" if decision.real_id else " (text is in the test split: not added to training)"))
