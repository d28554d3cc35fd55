"""Commands for coding: suggest codes for a text, batch-code a CSV, record a decision."""

from __future__ import annotations

import click

from engine.assist.coding import batch_code_csv, record_decision, suggest
from engine.jobs import ProgressInfo
from engine.atomic import check_output_path
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
    eta = f", about {info.eta_s / 60:.0f} min left" if info.eta_s is not None and info.eta_s >= 60 else (
        f", about {info.eta_s:.0f} s left" if info.eta_s is not None else "")
    extra = f" ({info.message})" if info.message.startswith("judging") else ""
    click.echo(f"\rcoded {info.done}/{info.total} rows{extra}{eta}   ", nl=False, err=True)


@code.command("batch")
@project_option
@click.argument("in_path", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_path", type=click.Path(dir_okay=False))
@click.option("--text-column", required=True, help="The column holding the texts.")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Auto-code rows whose top probability is at least this; the rest go to review.")
@click.option("--model", "model_id", type=int, help="Model id (default: the project's default model).")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--judge", "use_judge", is_flag=True,
              help="Re-rank the rows below the threshold with the local LLM judge (slow on a CPU: seconds per row). "
                   "Interrupted, the same command resumes without judging a row twice.")
@click.option("--judge-model", help="LLM for the judge: registered name/sha256 or a GGUF path (default: the default model).")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for the judge.")
@json_option
def code_batch(project_path: str, in_path: str, out_path: str, text_column: str, threshold: float,
               model_id: int | None, encoding: str, use_judge: bool, judge_model: str | None, threads: int,
               as_json: bool) -> None:
    """Code every row of IN_PATH (CSV) into OUT_PATH with code, confidence, model_version and status."""
    project = open_project(project_path)
    check_output_path(out_path, project=project, inputs=(in_path,))   # before a judge model is loaded
    progress = None if as_json else _progress
    if use_judge:
        from engine.assist.judge import BatchJudge, Judge, judge_backend_settings
        from engine.llm.backends import open_backend

        with open_backend(judge_backend_settings(judge_model, threads=threads)) as backend:
            judge = BatchJudge(Judge(project, backend, model=model_id), out_path)
            if judge.done and not as_json:
                click.echo(f"resuming: {len(judge.done)} rows already judged", err=True)
            result = batch_code_csv(project, in_path, out_path, text_column=text_column, threshold=threshold,
                                    model=model_id, encoding=encoding, progress=progress, judge=judge)
    else:
        result = batch_code_csv(project, in_path, out_path, text_column=text_column, threshold=threshold,
                                model=model_id, encoding=encoding, progress=progress)
    if as_json:
        echo_json({"rows": result.rows, "auto": result.auto, "review": result.review, "empty": result.empty,
                   "seconds": result.seconds, "rows_per_s": result.rows_per_s, "model_version": result.model_version,
                   "judge": result.judge})
        return
    click.echo("", err=True)
    click.echo(f"{result.rows} rows: {result.auto} auto-coded, {result.review} for review "
               f"({result.rows_per_s:.0f} rows/s) -> {result.out_path}")
    if result.judge:
        j = result.judge
        per = f", {j['seconds_per_judged']:.1f} s per judged row" if j["seconds_per_judged"] else ""
        click.echo(f"judge: {j['judged']} rows judged, {j['reused']} resumed, {j['changed']} re-ranked{per}"
                   + ("" if j["fitted"] else " (not fitted yet: run `statcoder judge fit` for a calibrated judge)"))
        if j.get("not_asked"):
            click.echo(f"judge: {j['not_asked']} unsure rows not asked: its fit gave the judge no weight, so no "
                       "verdict could re-rank them")


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
