"""The command names of the previous release, hidden, so that scripts written for it keep working.

`statcoder models ...` is now `statcoder llm ...`; `statcoder train run|list|default` and
`statcoder embed train|ensemble` are now `statcoder coders train|list|default`.
"""

from __future__ import annotations

import click

from engine.cli.coders import (MIX_KEYS, build_mix, coders_default, coders_fit, coders_list, coders_serve,
                               fasttext_options, fasttext_train_options, mix_options, report_trained)
from engine.cli.common import cli, json_option, open_project, progress_printer, project_option
from engine.cli.embed import embed
from engine.cli.llm import llm
from engine.coders.embedding.training import EmbeddingTrainOptions
from engine.coders.train import train_coder

cli.add_command(click.Group("models", commands=llm.commands, hidden=True, help="Old name of `statcoder llm`."))


@cli.group("train", hidden=True)
def train() -> None:
    """Old name of `statcoder coders`."""


for name, command in (("list", coders_list), ("default", coders_default), ("fit", coders_fit), ("serve", coders_serve)):
    train.add_command(command, name)


@train.command("run")
@project_option
@mix_options
@fasttext_options
@click.option("--name", default="")
@click.option("--no-default", is_flag=True)
@json_option
def train_run(project_path: str, name: str, no_default: bool, as_json: bool, **options) -> None:
    """Old spelling of `statcoder coders train --kind fasttext`."""
    project = open_project(project_path, write=True)
    mix = build_mix(project, **{k: options.pop(k) for k in MIX_KEYS})
    report_trained(train_coder(project, mix, kind="fasttext", name=name, make_default=not no_default,
                               fasttext=fasttext_train_options(**options),
                               progress=None if as_json else progress_printer()), as_json=as_json)


@embed.command("train", hidden=True)
@project_option
@mix_options
@click.option("--mode", type=click.Choice(["lr", "knn"]), default="lr", show_default=True)
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default="")
@click.option("--no-default", is_flag=True)
@json_option
def embed_train(project_path: str, mode: str, model_path: str | None, name: str, no_default: bool, as_json: bool,
                **options) -> None:
    """Old spelling of `statcoder coders train --kind embedding|knn`."""
    project = open_project(project_path, write=True)
    mix = build_mix(project, **options)
    report_trained(train_coder(project, mix, kind="knn" if mode == "knn" else "embedding", name=name,
                               make_default=not no_default, embedding=EmbeddingTrainOptions(model_path=model_path),
                               progress=None if as_json else progress_printer()), as_json=as_json)


@embed.command("ensemble", hidden=True)
@project_option
@mix_options
@click.option("--fasttext", "fasttext_id", type=int)
@click.option("--embedding", "embedding_id", type=int)
@click.option("--name", default="")
@click.option("--no-default", is_flag=True)
@json_option
def embed_ensemble(project_path: str, fasttext_id: int | None, embedding_id: int | None, name: str,
                   no_default: bool, as_json: bool, **options) -> None:
    """Old spelling of `statcoder coders train --kind ensemble`."""
    project = open_project(project_path, write=True)
    mix = build_mix(project, **options)
    members = [fasttext_id, embedding_id] if fasttext_id and embedding_id else None
    report_trained(train_coder(project, mix, kind="ensemble", name=name, make_default=not no_default,
                               members=members, combination="mean"), as_json=as_json)   # its old meaning
