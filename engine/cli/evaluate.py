"""Commands for evaluation: score a model on real test (or validation) texts, write the HTML report."""

from __future__ import annotations

import click

from engine.atomic import prepare_output_folder
from engine.evaluate.metrics import evaluate_model, set_report_path
from engine.evaluate.compare import default_scope
from engine.evaluate.report import write_report
from engine.classification import leaf_codes_under
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


@cli.command("evaluate")
@project_option
@click.option("--model", "model_id", type=int, help="Model id (default: the project's default model).")
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True,
              help="validation = the carve of real-train that training held out (use it to choose thresholds).")
@click.option("--subset", default="", help="Only texts coded under these codes, e.g. 10,11 (default: the codes "
              "the model was trained for).")
@click.option("--all-codes", is_flag=True, help="Score on the texts of every code, also those the model never saw.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write an HTML report with charts here.")
@json_option
def evaluate(project_path: str, model_id: int | None, split: str, subset: str, all_codes: bool,
             report_dir: str | None, as_json: bool) -> None:
    """Evaluate a model on real coded texts and store the evaluation in the project.

    By default on the texts of the codes the model was trained for: a 10-11 coder scored on every
    code's texts gets the others wrong by construction.
    """
    project = open_project(project_path, write=True)
    if report_dir:
        prepare_output_folder(report_dir, project=project)   # refuse a bad folder before the work
    tops = [s.strip() for s in subset.split(",") if s.strip()]
    scope_line = None
    if tops:
        codes = leaf_codes_under(project, tops)
    elif all_codes:
        codes = None
    else:
        scope = default_scope(project, model_id, split=split)
        codes = scope.codes
        scope_line = f"on {scope.describe(split)}" + (" (--all-codes for every code)" if codes is not None else "")
    result, row_id = evaluate_model(project, model_id, split=split, codes=codes)
    report = None
    if report_dir:
        report = write_report(result, report_dir, title=f"Model {result.extra['model_id']} on real {split} texts",
                              project=project)
        if row_id is not None:
            set_report_path(project, row_id, str(report))
    if as_json:
        echo_json({"evaluation_id": row_id, "codes": len(codes) if codes is not None else None, **result.summary(), "thresholds": result.thresholds,
                   "fallback": result.fallback, "report": str(report) if report else None})
        return
    if scope_line:
        click.echo(scope_line)
    click.echo(f"evaluation {row_id}: {result.n} texts, top-1 {result.top1:.1%}, top-5 {result.top5:.1%}, "
               f"macro-F1 {result.macro_f1:.3f}, ECE {result.ece:.3f}")
    click.echo("per level: " + ", ".join(f"{k} {v:.1%}" for k, v in result.per_level.items()))
    at5 = result.thresholds.get("prob@0.05", {})
    if at5.get("threshold") is not None:
        click.echo(f"auto-code at <= 5% error: threshold {at5['threshold']:.2f} codes {at5['coverage']:.1%}")
    if report:
        click.echo(f"report: {report}")
