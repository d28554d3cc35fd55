"""Commands for curation, augmentation and dataset quality: curate, flags, review decisions, export, report."""

from __future__ import annotations

from pathlib import Path

import click

from engine.atomic import check_output_path, write_text
from engine.realdata.augment import OPERATIONS, AugmentOptions, augment_real_train
from engine.curate import (ALL_RULES, balance_report, clear_user_status, export_curated, flag_counts, list_flags,
                           override_flag, set_sample_status, status_counts)
from engine.curate.settings import CurationSettings, parse_rules, run_curation
from engine.curate.quality import quality_report
from engine.cli.common import cli, echo_json, json_option, open_project, progress_printer, project_option

run_option = click.option("--run", "runs", type=int, multiple=True,
                          help="Generation run id (repeat for several; default: every run).")


def _runs(runs: tuple[int, ...]) -> list[int] | None:
    return list(runs) or None


@cli.group("curate")
def curate_group() -> None:
    """Curate generated samples: flag with reasons, accept or reject, export the curated dataset."""


@curate_group.command("run")
@project_option
@run_option
@click.option("--threshold", type=float, default=90.0, show_default=True,
              help="Near-duplicate threshold: rapidfuzz ratio 0-100 of the normalised texts.")
@click.option("--rules", help=f"Comma-separated rules to run (default: all): {', '.join(ALL_RULES)}.")
@click.option("--reject", help="Comma-separated rules that reject a sample (default: all but note_copy).")
@click.option("--relabel", help="Comma-separated rules whose suggested code relabels a sample instead of "
                                 "rejecting it (default: excludes_conflict,label_check; 'none' for none).")
@click.option("--no-label-check", is_flag=True, help="Skip the cross-validated fastText label check.")
@click.option("--folds", type=int, default=5, show_default=True, help="Folds of the label check.")
@click.option("--top-k", type=int, default=3, show_default=True,
              help="Flag a sample whose own code the checker does not rank in its top k.")
@click.option("--confident", type=float, default=0.8, show_default=True,
              help="Flag a sample another code is predicted for with at least this probability.")
@click.option("--no-real-train", is_flag=True, help="Do not use real-train texts in the label check.")
@click.option("--checker", type=click.Choice(["auto", "fasttext", "embedding"]), default="auto", show_default=True,
              help="The label-check classifier: fastText, or sentence embeddings with logistic regression; auto: "
                   "embeddings in notes mode for an English classification, else fastText k-fold.")
@click.option("--check-mode", type=click.Choice(["kfold", "notes"]),
              help="kfold: train on the other folds of the samples too; notes: judge every sample by a classifier "
                   "trained on the notes (plus real-train unless --no-real-train) alone. Default: notes for "
                   "embeddings, kfold for fastText.")
@click.option("--quota", type=int, help="Wanted accepted samples per code (default: the runs' quota).")
@click.option("--cap", type=int, help="Keep at most this many accepted samples per code.")
@click.option("--supergen", "supergen_share", type=float, default=0.0, show_default=True,
              help="SuperGen: flag (low_logprob) this share of each code's samples with the lowest generation "
                   "log-probability per token of the phrase (per request for samples written before phrases were "
                   "scored); 0 = off.")
@click.option("--sungen", "sungen_share", type=float, default=0.0, show_default=True,
              help="SunGen (simplified): flag (low_influence) this share of each code's samples whose training "
                   "gradient works against the notes (and real-train) the most; 0 = off.")
@click.option("--fusegen-top-k", type=int, default=0, show_default=True,
              help="FuseGen: with samples from two or more LLMs, flag (model_disagreement) samples whose code no "
                   "coder trained on another model's samples ranks in this top k; 0 = off.")
@click.option("--judge", "use_judge", is_flag=True,
              help="The local LLM judge reads every label-check flag; a flag relabels or rejects only where the "
                   "judge prefers another code with at least --judge-confidence (slow: seconds per flag on a CPU). "
                   "Every verdict is kept in the project, so a run stopped with Ctrl+C resumes when run again.")
@click.option("--judge-confidence", type=float, default=0.5, show_default=True)
@click.option("--judge-method", type=click.Choice(["channel", "letters"]),
              help="How the judge reads a flag (default: channel with a local model, letters with a server).")
@click.option("--judge-model", help="LLM for the judge: registered name/sha256 or a GGUF path (default: the default model).")
@click.option("--judge-threads", type=int, default=2, show_default=True)
@json_option
def curate_run(project_path: str, runs: tuple[int, ...], threshold: float, rules: str | None, reject: str | None,
               relabel: str | None, no_label_check: bool, folds: int, top_k: int, confident: float, no_real_train: bool,
               checker: str, check_mode: str | None, quota: int | None, cap: int | None, use_judge: bool,
               judge_confidence: float, judge_method: str | None, judge_model: str | None, judge_threads: int,
               supergen_share: float,
               sungen_share: float, fusegen_top_k: int, as_json: bool) -> None:
    """Run every curation rule over the samples of generation runs and store flags and statuses."""
    project = open_project(project_path, write=True)
    settings = CurationSettings(run_ids=_runs(runs), threshold=threshold, rules=parse_rules(rules),
                                reject=parse_rules(reject), relabel=parse_rules(relabel),
                                label_check=not no_label_check, folds=folds, top_k=top_k, confident=confident,
                                use_real_train=not no_real_train, checker=checker, check_mode=check_mode,
                                quota=quota, cap=cap, supergen_share=supergen_share, sungen_share=sungen_share,
                                fusegen_top_k=fusegen_top_k, judge=use_judge, judge_confidence=judge_confidence,
                                judge_method=judge_method, judge_model=judge_model, judge_threads=judge_threads)
    result = run_curation(project, settings, progress=None if as_json else progress_printer())
    if not as_json:
        click.echo("", err=True)
    if as_json:
        echo_json(result.to_dict())
        return
    for line in result.lines():
        click.echo(line)


@curate_group.command("flags")
@project_option
@run_option
@click.option("--list", "rule", help="List the flagged samples of this rule instead of counting.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many listed.")
@json_option
def flags(project_path: str, runs: tuple[int, ...], rule: str | None, limit: int, as_json: bool) -> None:
    """Counts of current flags per rule (or list one rule's flagged samples)."""
    project = open_project(project_path)
    if rule:
        found = list_flags(project, run_ids=_runs(runs), rule=rule, limit=limit)
        if as_json:
            echo_json([f.__dict__ for f in found])
            return
        for f in found:
            suggested = f" -> {f.suggested_code}" if f.suggested_code else ""
            over = " [overridden]" if f.overridden else ""
            click.echo(f"flag {f.id}  sample {f.sample_id}  {f.code}  {f.text!r}: {f.reason}{suggested}{over}")
        return
    counts = flag_counts(project, run_ids=_runs(runs))
    statuses = status_counts(project, run_ids=_runs(runs))
    if as_json:
        echo_json({"flags": {r: c.__dict__ for r, c in counts.items()}, "statuses": statuses})
        return
    click.echo(f"{'rule':<18} {'flagged':>8} {'overridden':>10} {'rejected':>8}")
    for rule_name, c in counts.items():
        click.echo(f"{rule_name:<18} {c.flagged:>8} {c.overridden:>10} {c.rejected:>8}")
    click.echo("samples: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))


@curate_group.command("set")
@project_option
@click.argument("status", type=click.Choice(["accepted", "rejected", "auto"]))
@click.argument("sample_ids", type=int, nargs=-1, required=True)
def set_status(project_path: str, status: str, sample_ids: tuple[int, ...]) -> None:
    """Accept or reject samples as the user ('auto' hands them back to the rules)."""
    project = open_project(project_path)
    if status == "auto":
        changed = clear_user_status(project, sample_ids)
    else:
        changed = set_sample_status(project, sample_ids, status, by="user")
    click.echo(f"{changed} samples changed")


@curate_group.command("override")
@project_option
@click.argument("flag_ids", type=int, nargs=-1, required=True)
@click.option("--undo", is_flag=True, help="Take the override back.")
def override(project_path: str, flag_ids: tuple[int, ...], undo: bool) -> None:
    """Override flags so they no longer reject their samples (or --undo)."""
    changed = override_flag(open_project(project_path), flag_ids, overridden=not undo)
    click.echo(f"{changed} samples changed status")


@curate_group.command("balance")
@project_option
@run_option
@click.option("--quota", type=int, help="Wanted accepted samples per code (default: the runs' quota).")
@json_option
def balance(project_path: str, runs: tuple[int, ...], quota: int | None, as_json: bool) -> None:
    """Codes with fewer accepted samples than the quota, so generation can top up exactly those."""
    report = balance_report(open_project(project_path), run_ids=_runs(runs), quota=quota)
    if as_json:
        echo_json(report.__dict__)
        return
    for line in report.lines(limit=None):
        click.echo(line)


@curate_group.command("export")
@project_option
@run_option
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["fasttext", "csv"]), help="Default: from OUT's suffix.")
@click.option("--include-rejected", is_flag=True, help="CSV only: rejected samples too, with their flags.")
def export(project_path: str, runs: tuple[int, ...], out: str, fmt: str | None, include_rejected: bool) -> None:
    """Write the curated (accepted) samples as fastText training lines or CSV."""
    fmt = fmt or ("csv" if Path(out).suffix.lower() == ".csv" else "fasttext")
    n = export_curated(open_project(project_path), out, fmt=fmt, run_ids=_runs(runs),
                       include_rejected=include_rejected)
    click.echo(f"wrote {n} samples to {out} ({fmt})")


@cli.command("augment")
@project_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--per-text", type=int, default=2, show_default=True, help="Variants per real-train text.")
@click.option("--ops", default=",".join(OPERATIONS), show_default=True, help="Operations to draw from.")
@click.option("--ops-per-variant", type=int, default=1, show_default=True)
@click.option("--codes", help="Only texts of these codes (comma-separated).")
@json_option
def augment(project_path: str, seed: int, per_text: int, ops: str, ops_per_variant: int, codes: str | None,
            as_json: bool) -> None:
    """Augment real-train texts (never test texts) with typos, dropout, swaps, abbreviations, case changes."""
    options = AugmentOptions(seed=seed, per_text=per_text, operations=[o.strip() for o in ops.split(",") if o.strip()],
                             ops_per_variant=ops_per_variant,
                             codes=[c.strip() for c in codes.split(",")] if codes else None)
    result = augment_real_train(open_project(project_path, write=True), options)
    if as_json:
        echo_json(result.__dict__)
        return
    click.echo(f"{result.source_texts} real-train texts: {result.created} new variants, {result.existing} already "
               f"stored, {result.skipped} skipped; by operation: "
               + ", ".join(f"{k} {v}" for k, v in result.by_operation.items()))


@cli.command("quality")
@project_option
@run_option
@click.option("--all-samples", is_flag=True, help="Text metrics over every sample, not only accepted ones.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the markdown report here.")
@json_option
def quality(project_path: str, runs: tuple[int, ...], all_samples: bool, out: str | None, as_json: bool) -> None:
    """Dataset quality: per code and per run size, distinct-n, self-similarity, flags, label agreement, coverage."""
    project = open_project(project_path)
    if out:
        check_output_path(out, project=project)
    report = quality_report(project, run_ids=_runs(runs), accepted_only=not all_samples)
    if out:
        write_text(out, report.markdown(), project=project)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.markdown())
