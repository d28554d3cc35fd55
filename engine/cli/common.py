"""The root command group and options shared by every stage's commands."""

from __future__ import annotations

import json
from typing import Any

import click

from engine import __version__
from engine.errors import ProjectError, StatcoderError
from engine.jobs import ProgressInfo
from engine.store.project import Project

# How the command line says an error's hint (engine.errors.Hint); the GUI has its own wording.
CLI_HINTS = {
    "encoding": "try --encoding {value}",
    "add_llm": "add one with `statcoder llm add FILE` or `statcoder llm install-default`",
    "train_coder": "train one with `statcoder coders train`",
    "threshold": "give one with --threshold",
    "examples": "choose them with `statcoder generate create --progen-from RUN` (progen) or `--retrieve-from` "
                "(retrieved)",
    "cancel_run": "or cancel it with `statcoder generate cancel {value}`",
}


def error_line(exc: StatcoderError) -> str:
    """The error as the command line prints it: the engine's message, then the hint in CLI words."""
    hint = exc.hint
    phrase = CLI_HINTS.get(hint.action, "").format(value=hint.value) if hint else ""
    return f"{exc}; {phrase}" if phrase else str(exc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="statcoder")
def cli() -> None:
    """statcoder: code free text into official classifications, offline."""


project_option = click.option(
    "-p", "--project", "project_path", envvar="STATCODER_PROJECT", required=True,
    type=click.Path(dir_okay=False), help="The project file (or set STATCODER_PROJECT).")

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def open_project(path: str, *, write: bool = False) -> Project:
    """The project at PATH. `write`: the command writes, so a read-only project is refused before any
    work (a training would otherwise run for minutes and fail only when it saves its model)."""
    project = Project.open(path)
    if write and project.read_only:
        project.close()
        raise ProjectError(f"the project is read-only ({project.path}): open a copy in a folder you can write "
                           "to, or change its permissions")
    return project


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def progress_printer():
    """A progress callback that rewrites one line on stderr: message, percent, ETA."""
    def report(info: ProgressInfo) -> None:
        eta = f", ETA {info.eta_s:.0f}s" if info.eta_s is not None else ""
        click.echo(f"\r{info.message}: {info.fraction:6.1%}{eta}   ", nl=False, err=True)
    return report


def warn_uncurated(project: Project, mix: Any) -> None:
    """Say on stderr when a data mix would train on synthetic samples that no curation has judged."""
    if not getattr(mix, "synthetic", 0):
        return
    from engine.curate import uncurated_samples

    n = uncurated_samples(project, run_ids=mix.run_ids, codes=mix.codes)
    if n:
        click.echo(f"warning: {n:,} accepted synthetic sample{'s' if n != 1 else ''} in this mix were never curated "
                   "and will be trained on as generated, junk included; run `statcoder curate run` first",
                   err=True)
