"""Commands for generation runs: create, run (also resumes), cancel, status, list, samples."""

from __future__ import annotations

import json
import sys

import click

from engine.generate import (STRATEGIES, GenerationParams, cancel_run, create_run, list_runs, run_generation, run_status)
from engine.classification import leaf_codes_under
from engine.jobs import ProgressInfo
from engine.llm.backends import DEFAULT_PARALLEL, BackendSettings, HardwareSettings
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


@cli.group("generate")
def generate() -> None:
    """Generate labelled training texts with a local LLM."""


@generate.command("create")
@project_option
@click.option("--code", "codes", multiple=True, help="A code to generate for (repeatable).")
@click.option("--under", "under", multiple=True, help="All leaf codes under this code, e.g. a division (repeatable).")
@click.option("--quota", type=int, required=True, help="Accepted samples per code.")
@click.option("--strategy", "strategies", multiple=True, type=click.Choice(STRATEGIES),
              help="Strategy (repeatable); default: contrastive, nec, keywords, grid, notes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", help="Registered model name/sha256 or a GGUF path; default: the default model.")
@click.option("--backend", "kind", type=click.Choice(["llama-cpp", "openai"]), default="llama-cpp", show_default=True)
@click.option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080 (backend openai).")
@click.option("--server-model", default="default", show_default=True, help="Model name the server serves.")
@click.option("--parallel", type=int, default=None,
              help="Requests worked on at once: sequences in one llama.cpp batch (in-process, default "
                   f"{DEFAULT_PARALLEL}) or concurrent requests to the server (default 4).")
@click.option("--prompt-kind", type=click.Choice(["chat", "completion"]), help="Override chat/base detection.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--ctx", "n_ctx", type=int, default=2048, show_default=True, help="Context size in tokens.")
@click.option("--gpu-layers", type=int, default=0, show_default=True, help="Layers on the GPU (-1: all).")
@click.option("--per-request", type=int, default=6, show_default=True, help="Phrases asked for per request.")
@click.option("--language", default="English", show_default=True, help="Language of the generated texts.")
@click.option("--temperature", type=float, default=0.8, show_default=True)
@click.option("--weight", "weights", multiple=True, help="STRATEGY=WEIGHT share of the quota (repeatable).")
@click.option("--name", help="A name for the run.")
@click.option("--progen-from", "progen_from", type=int, multiple=True,
              help="ProGen: a first-round run (repeatable) whose samples a notes-trained coder finds most helpful "
                   "become the examples of the 'progen' strategy.")
@click.option("--retrieve-from", "retrieve_from", type=click.Choice(["train", "uncoded"]), multiple=True,
              help="SynthesizRR: real-train and/or uncoded texts nearest to each code's notes become style examples "
                   "of the 'retrieved' strategy (never test-split texts; their codes are never shown).")
@click.option("--examples-pool", type=int, default=12, show_default=True,
              help="Examples chosen per code for progen/retrieved.")
@click.option("--examples-k", type=int, default=4, show_default=True, help="Examples shown per request.")
@click.option("--suppress", "suppress_penalty", type=float, default=0.0, show_default=True,
              help="Diversity control (logit suppression): lower by this much the logits of words already used in "
                   "--suppress-min-count of a code's samples (in-process llama.cpp only); 0 = off.")
@click.option("--suppress-min-count", type=int, default=3, show_default=True)
@json_option
def create_cmd(project_path: str, codes: tuple[str, ...], under: tuple[str, ...], quota: int,
               strategies: tuple[str, ...], seed: int, model: str | None, kind: str, base_url: str | None,
               server_model: str, parallel: int | None, prompt_kind: str | None, threads: int, n_ctx: int,
               gpu_layers: int, per_request: int, language: str, temperature: float, weights: tuple[str, ...],
               name: str | None, progen_from: tuple[int, ...], retrieve_from: tuple[str, ...], examples_pool: int,
               examples_k: int, suppress_penalty: float, suppress_min_count: int, as_json: bool) -> None:
    """Define a run; prints its id. Run it with `statcoder generate run ID`."""
    project = open_project(project_path, write=True)
    chosen = list(codes) + (leaf_codes_under(project, list(under)) if under else [])
    if not chosen:
        raise click.UsageError("give --code or --under")
    parsed_weights = {}
    for item in weights:
        strategy, _, value = item.partition("=")
        if strategy not in STRATEGIES or not value:
            raise click.UsageError(f"--weight takes STRATEGY=NUMBER, got '{item}'")
        parsed_weights[strategy] = float(value)
    if parallel is not None and parallel < 1:
        raise click.BadParameter("must be at least 1", param_hint="--parallel")
    hardware = HardwareSettings(threads=threads, n_ctx=n_ctx, n_gpu_layers=gpu_layers,
                                parallel=parallel or DEFAULT_PARALLEL)
    settings = BackendSettings(kind=kind, base_url=base_url, server_model=server_model, parallel=parallel or 4,
                               prompt_kind=prompt_kind, hardware=hardware)
    codes_list = list(dict.fromkeys(chosen))
    examples: dict[str, dict[str, list[str]]] = {}
    if progen_from:
        from engine.curate.feedback import helpful_samples
        examples["progen"] = helpful_samples(project, run_ids=list(progen_from), codes=codes_list, top=examples_pool)
    if retrieve_from:
        from engine.coders.embedding.retrieval import style_examples
        examples["retrieved"] = style_examples(project, codes=codes_list, top=examples_pool, sources=retrieve_from)
    strategies = tuple(strategies) or (tuple(s for s in ("progen", "retrieved") if s in examples) or ())
    params = GenerationParams(per_request=per_request, language=language, temperature=temperature,
                              weights=parsed_weights, examples=examples, examples_k=examples_k,
                              suppress_penalty=suppress_penalty, suppress_min_count=suppress_min_count)
    run_id = create_run(project, codes=list(dict.fromkeys(chosen)), quota=quota,
                        strategies=list(strategies) or None, seed=seed, model=model, backend=settings,
                        params=params, name=name)
    if as_json:
        echo_json({"run_id": run_id, "codes": len(chosen), "quota": quota})
    else:
        click.echo(f"created run {run_id}: {len(chosen)} codes x {quota} samples")


def _progress_printer(info: ProgressInfo) -> None:
    eta = f", ETA {info.eta_s:.0f}s" if info.eta_s is not None else ""
    rates = ", ".join(f"{k.replace('_per_s', '').replace('_', ' ')}/s {v:.2f}" if k.endswith("_per_s")
                      else f"{k} {v:g}" for k, v in info.rates.items())
    click.echo(f"{info.done}/{info.total} {info.message} ({rates}{eta})", err=True)


@generate.command("run")
@project_option
@click.argument("run_id", type=int)
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.option("--parallel", type=click.IntRange(min=1), default=None,
              help="Sequences in one llama.cpp batch for this call (default: the run's setting).")
@json_option
def run_cmd(project_path: str, run_id: int, quiet: bool, parallel: int | None, as_json: bool) -> None:
    """Run RUN_ID until every code has its quota. Running it again after a crash or cancel resumes it."""
    project = open_project(project_path, write=True)
    result = run_generation(project, run_id, progress=None if quiet else _progress_printer, parallel=parallel)
    if as_json:
        echo_json({**result.__dict__, "samples_per_s": result.samples_per_s, "tokens_per_s": result.tokens_per_s})
        return
    click.echo(f"run {run_id} done: {result.samples} samples ({result.written} new, {result.units} requests, "
               f"{result.parse_failures} unparseable) on {result.device}, {result.parallel} parallel; "
               f"{result.samples_per_s:.2f} samples/s, {result.tokens_per_s:.1f} tokens/s")
    if result.shortfall:
        click.echo(f"short of the quota: {result.shortfall}")


generate.add_command(run_cmd, "resume")


@generate.command("cancel")
@project_option
@click.argument("run_id", type=int)
@click.option("--pause", is_flag=True, help="List the run as paused, not cancelled (it resumes the same way).")
def cancel_cmd(project_path: str, run_id: int, pause: bool) -> None:
    """Ask a running RUN_ID to stop after its current request."""
    cancel_run(open_project(project_path), run_id, pause=pause)
    click.echo(f"{'pause' if pause else 'cancel'} requested for run {run_id}")


@generate.command("pause")
@project_option
@click.argument("run_id", type=int)
def pause_cmd(project_path: str, run_id: int) -> None:
    """Ask a running RUN_ID to stop after its current request and list it as paused."""
    cancel_run(open_project(project_path), run_id, pause=True)
    click.echo(f"pause requested for run {run_id}")


@generate.command("status")
@project_option
@click.argument("run_id", type=int)
@json_option
def status_cmd(project_path: str, run_id: int, as_json: bool) -> None:
    """Definition, progress, tokens and shortfall of RUN_ID."""
    status = run_status(open_project(project_path), run_id)
    if as_json:
        echo_json({**status.__dict__, "shortfall": status.shortfall})
        return
    click.echo(f"run {status.run_id} '{status.name}': {status.status}, {status.done}/{status.total} samples, "
               f"{status.units} requests, {status.parse_failures} unparseable")
    click.echo(f"  model {status.model_name} ({status.model_sha256[:12]}), backend {status.backend} "
               f"on {status.device or '-'}; strategies {', '.join(status.strategies)}")
    click.echo(f"  tokens: prompt {status.prompt_tokens} (reused {status.cached_tokens}), "
               f"completion {status.completion_tokens}; {status.seconds:.0f}s generating")
    click.echo(f"  per strategy: {json.dumps(status.per_strategy)}")
    if status.shortfall:
        click.echo(f"  short: {status.shortfall}")
    if status.owner:
        click.echo(f"  run by {status.owner}")
    elif status.status == "interrupted":
        click.echo("  its runner stopped without finishing (killed or crashed): `statcoder generate run` resumes it")
    if status.error:
        click.echo(f"  note: {status.error}")


@generate.command("list")
@project_option
@json_option
def list_cmd(project_path: str, as_json: bool) -> None:
    """Every run in the project."""
    runs = list_runs(open_project(project_path))
    if as_json:
        echo_json([{**r.__dict__, "shortfall": r.shortfall} for r in runs])
        return
    for r in runs:
        click.echo(f"{r.run_id:>4}  {r.status:<9} {r.done:>6}/{r.total:<6} {r.model_name}  {r.name}")


@generate.command("samples")
@project_option
@click.argument("run_id", type=int)
@click.option("--code", help="Only this code.")
@click.option("--limit", type=int, default=50, show_default=True)
def samples_cmd(project_path: str, run_id: int, code: str | None, limit: int) -> None:
    """Print a run's samples (code, strategy, text)."""
    project = open_project(project_path)
    sql = "SELECT code, strategy, text FROM samples WHERE run_id = ?" + (" AND code = ?" if code else "")
    params = (run_id, code) if code else (run_id,)
    for row in project.conn.execute(sql + " ORDER BY id LIMIT ?", (*params, limit)):
        sys.stdout.write("\t".join(row) + "\n")
