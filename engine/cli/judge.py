"""Commands for the LLM judge: fit it on validation texts, ask it about one text."""

from __future__ import annotations

import click

from engine.cli.common import cli, echo_json, json_option, open_project, project_option
from engine.jobs import ProgressInfo

judge_model_option = click.option("--judge-model", help="LLM for the judge: registered name/sha256 or a GGUF path "
                                                        "(default: the default model).")
threads_option = click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for the judge.")


def _progress(info: ProgressInfo) -> None:
    eta = f", about {info.eta_s:.0f} s left" if info.eta_s is not None else ""
    click.echo(f"\r{info.message}{eta}   ", nl=False, err=True)


@cli.group("judge")
def judge() -> None:
    """The local LLM as a second opinion on a coder's best candidates."""


@judge.command("fit")
@project_option
@click.option("--model", "model_id", type=int, help="Coder model id (default: the project's default model).")
@judge_model_option
@threads_option
@click.option("-k", type=int, default=5, show_default=True, help="Candidates shown to the judge.")
@click.option("--orders", type=int, default=2, show_default=True, help="Candidate orders averaged (position bias).")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Judge only texts whose top probability is below this (the auto-code threshold).")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many validation texts judged.")
@click.option("--method", type=click.Choice(["channel", "letters"]), default=None,
              help="channel: how likely the LLM finds the text after each candidate's card (in-process only, "
                   "the default there); letters: the LLM picks a lettered candidate (works with a server too).")
@click.option("--label-precision", type=float, default=0.9, show_default=True,
              help="Pseudo-labels need this precision on validation (sets the labelling threshold).")
@json_option
def judge_fit(project_path: str, model_id: int | None, judge_model: str | None, threads: int, k: int, orders: int,
              threshold: float, limit: int, method: str | None, label_precision: float, as_json: bool) -> None:
    """Fit the judge for the coder on validation texts (real validation carve, else held-out samples)."""
    from engine.assist.judge import fit_judge, judge_backend_settings
    from engine.llm.backends import open_backend

    project = open_project(project_path)
    with open_backend(judge_backend_settings(judge_model, threads=threads)) as backend:
        config = fit_judge(project, backend, model=model_id, k=k, orders=orders, threshold=threshold, limit=limit,
                           method=method, label_precision=label_precision, progress=None if as_json else _progress)
    if as_json:
        echo_json(config.to_json())
        return
    click.echo("", err=True)
    fit = config.fit
    comb = config.combination
    click.echo(f"validation: {fit['validation']}, {fit['validation_texts']} texts, {fit['unsure']} below the "
               f"threshold, {fit['judged']} judged ({fit['seconds_per_text']:.1f} s each)")
    click.echo(f"top-1 on the judged texts: coder {fit['coder_top1']:.1%}, judge alone {fit['judge_top1']:.1%}, "
               f"combined {fit['combined_top1']:.1%}; right code among the candidates {fit['candidates_hold_gold']:.1%}")
    click.echo(f"method {config.method}; combination: weight {comb.weight}, gate {comb.gate}, temperature "
               f"{comb.temperature}" + ("; position prior " + ", ".join(f"{p:.2f}" for p in config.prior)
                                        if config.prior else ""))
    label = "none reaches the precision" if config.label_threshold is None else f"{config.label_threshold:.3f}"
    click.echo(f"pseudo-label threshold (precision {label_precision:.0%} on validation): {label}")


@judge.command("ask")
@project_option
@click.argument("text")
@click.option("--model", "model_id", type=int, help="Coder model id (default: the project's default model).")
@judge_model_option
@threads_option
@json_option
def judge_ask(project_path: str, text: str, model_id: int | None, judge_model: str | None, threads: int,
              as_json: bool) -> None:
    """The judge's second opinion on TEXT beside the coder's ranking."""
    from engine.assist.judge import second_opinion, judge_backend_settings
    from engine.llm.backends import open_backend

    project = open_project(project_path)
    with open_backend(judge_backend_settings(judge_model, threads=threads)) as backend:
        opinion = second_opinion(project, text, backend=backend, model=model_id)
    if as_json:
        echo_json({"coder": opinion.coder, "judge": opinion.judge, "combined": opinion.combined,
                   "preferred": opinion.preferred, "seconds": opinion.seconds, "fitted": opinion.fitted,
                   "shown": [{"code": c.code, "title": c.title, "lines": list(c.lines)} for c in opinion.shown]})
        return
    judge_p = dict(opinion.judge)
    combined = dict(opinion.combined)
    click.echo(f"{'code':<10} {'coder':>7} {'judge':>7} {'merged':>7}  title")
    for code, p in opinion.coder:
        mark = "*" if code == opinion.preferred else " "
        jp = f"{judge_p[code]:7.1%}" if code in judge_p else "      -"
        click.echo(f"{code:<10} {p:7.1%} {jp} {combined.get(code, 0):7.1%} {mark} "
                   f"{next((c.title for c in opinion.shown if c.code == code), '')}")
    click.echo(f"judge prefers {opinion.preferred} ({opinion.seconds:.1f} s)"
               + ("" if opinion.fitted else "; not fitted: run `statcoder judge fit`"))


@cli.command("import-uncoded")
@project_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--text-column", required=True, help="Column holding the text.")
@click.option("--encoding", default="utf-8", show_default=True)
def import_uncoded(project_path: str, file: str, text_column: str, encoding: str) -> None:
    """Import uncoded texts (a CSV whose only needed column is the text) for `statcoder label`."""
    from engine.realdata.uncoded import import_uncoded_texts

    result = import_uncoded_texts(open_project(project_path), file, text_column=text_column, encoding=encoding)
    for line in result.lines():
        click.echo(line)


@cli.command("label")
@project_option
@click.option("--model", "model_id", type=int, help="Coder model id (default: the project's default model).")
@click.option("--judge/--no-judge", "use_judge", default=False, show_default=True,
              help="Re-rank the texts the coder is unsure about with the LLM judge (seconds per text on a CPU; "
                   "off by default, as on the Uncoded page: on all of NACE, fitted without real text, it made the "
                   "best coder's labels slightly worse).")
@judge_model_option
@threads_option
@click.option("--threshold", type=float,
              help="Pseudo-label at or above this probability (default: chosen on validation, see `judge fit`).")
@click.option("--precision", type=float, default=0.9, show_default=True,
              help="Without a fitted judge: the coder's threshold is the one reaching this precision on validation.")
@click.option("--review", type=int, default=100, show_default=True,
              help="Keep this many of the least confident labels in the review queue.")
@click.option("--relabel", is_flag=True, help="Label every uncoded text again (reviewed ones are kept).")
@json_option
def label(project_path: str, model_id: int | None, use_judge: bool, judge_model: str | None, threads: int,
          threshold: float | None, precision: float, review: int, relabel: bool, as_json: bool) -> None:
    """Code the uncoded texts with the best coder (+ judge): confident labels train as 'pseudo-labelled'."""
    from engine.assist.pseudo import label_uncoded

    project = open_project(project_path)
    progress = None if as_json else _progress
    if use_judge:
        from engine.assist.judge import Judge, judge_backend_settings
        from engine.llm.backends import open_backend

        with open_backend(judge_backend_settings(judge_model, threads=threads)) as backend:
            result = label_uncoded(project, judge=Judge(project, backend, model=model_id), threshold=threshold,
                                   review=review, precision=precision, relabel=relabel, progress=progress)
    else:
        result = label_uncoded(project, model=model_id, threshold=threshold, review=review, precision=precision,
                               relabel=relabel, progress=progress)
    if as_json:
        from dataclasses import asdict

        echo_json(asdict(result))
        return
    click.echo("", err=True)
    for line in result.lines():
        click.echo(line)
