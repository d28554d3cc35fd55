"""Commands for project files: new, info."""

from __future__ import annotations

import click

from engine.classification import import_builtin
from engine.store.project import Project
from engine.realdata.importing import PRESETS, import_preset
from engine.coders.registry import verify_models
from engine.store.check import check_project
from engine.cli.common import cli, echo_json, json_option, open_project, project_option
from engine.cli.classification import print_import_result


@cli.command("new")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--builtin", "builtin", help="Also import a built-in classification (nace2, naics2017).")
@click.option("--real", "real", type=click.Choice(sorted(PRESETS)), help="Also import built-in coded texts.")
def new_project(path: str, builtin: str | None, real: str | None) -> None:
    """Create a new, empty project file at PATH."""
    project = Project.create(path)
    click.echo(f"created project {project.path}")
    if builtin:
        print_import_result(import_builtin(project, builtin))
    if real:
        for line in import_preset(project, real).lines():
            click.echo(line)


@cli.command("info")
@project_option
@json_option
def info(project_path: str, as_json: bool) -> None:
    """What a project holds, at a glance."""
    summary = open_project(project_path).summary()
    if as_json:
        echo_json(summary)
        return
    for key, value in summary.items():
        if key == "classification" and isinstance(value, dict):
            value = value.get("name")
        click.echo(f"{key.replace('_', ' '):>18}: {value}")


@cli.command("check")
@project_option
@click.option("--quick", is_flag=True, help="Skip the slower cross-checks of indexes against tables.")
@json_option
def check(project_path: str, quick: bool, as_json: bool) -> None:
    """Check that a project file is whole: SQLite integrity, orphan rows, model files. Only reads.

    Exit status 1 when a problem is found."""
    report = check_project(open_project(project_path), quick=quick, verify_models=verify_models)
    if as_json:
        echo_json({"ok": report.ok, "integrity": report.integrity, "orphans": report.orphans,
                   "models": report.models, "notes": report.notes, "quick": report.quick})
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        click.get_current_context().exit(1)
