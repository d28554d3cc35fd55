"""Commands for real coded texts: import with a deterministic train/test split."""

from __future__ import annotations

import click

from engine.realdata.importing import PRESETS, import_preset, import_real_texts
from engine.cli.common import cli, open_project, project_option


@cli.group("real")
def real() -> None:
    """Real coded texts: import, split."""


@real.command("import")
@project_option
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="Coded texts shipped with statcoder.")
@click.option("--text-column", help="Column holding the text.")
@click.option("--code-column", help="Column holding the code.")
@click.option("--code-digits", type=int, help="Match on the first N digits of the code (UK SIC 10110 -> NACE 10.11: 4).")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--test-share", type=float, default=0.5, show_default=True,
              help="Share of texts held out for testing, by a hash of the normalised text.")
def import_real(project_path: str, file: str | None, preset: str | None, text_column: str | None,
                code_column: str | None, code_digits: int | None, encoding: str, test_share: float) -> None:
    """Import coded texts from a CSV FILE (or a --preset). Unknown codes and duplicates are reported."""
    project = open_project(project_path, write=True)
    if bool(file) == bool(preset):
        raise click.UsageError("give either FILE or --preset NAME")
    if preset:
        result = import_preset(project, preset, test_share=test_share)
    else:
        if not text_column or not code_column:
            raise click.UsageError("--text-column and --code-column are required with FILE")
        result = import_real_texts(project, file, text_column=text_column, code_column=code_column,
                                   encoding=encoding, code_digits=code_digits, test_share=test_share)
    for line in result.lines():
        click.echo(line)
