"""The 'log' ensemble with real coded texts, all of NACE: real-train + notes, the weights chosen on validation.

    PYTHONPATH=. python -m bench.ensemble_real
    PYTHONPATH=. python -m bench.ensemble_real --lexical   # also the lexical coder, alone and as a fourth member
    PYTHONPATH=. python -m bench.ensemble_real --lexical --grams 4   # its terms: words and their 4-grams
    PYTHONPATH=. python -m bench.ensemble_real --lexical --grams 4 --redirected --coverage   # as the product trains now

The kNN, the embedding regression and fastText are trained through the product's path on the NACE notes and
the real-train half (bench/projects/nace-full-24.statcoder, copied under bench/work/), each validated on the
product's 10 % carve of real-train; the 'log' ensemble (sum of w x log p, temperature) and the old 'mean'
ensemble (fastText and the regression) choose their weights on that carve, as the product does. Nothing is
chosen on the test half, which is read once for every coder. Result: bench/results/ensemble-real-nace-full.*;
with --lexical, ensemble-real-lexical-nace-full.* (the same rows, plus the lexical coder and the four-member
ensemble the product now trains); with --grams N (the lexical coder's terms are words and their character
N-grams, as the product cuts them now with N = 4; without it, words only as first measured),
ensemble-real-lexical-gramsN-nace-full.*. With --heads, one more row: the four-member ensemble with the
title heads as the product trains it now (engine.coders.heads; its weight chosen on the same carve), the file
...-heads-nace-full.*; the other ensembles are trained without the term (heads 0), as first measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import command_line, machine, now, write_result  # noqa: E402
from bench.ensemble_zero_real import MEMBERS, model_by_name, open_work, real_rows, score_coder  # noqa: E402
from engine.coders.data import DataMix  # noqa: E402
from engine.coders.lexical import LexicalOptions  # noqa: E402
from engine.coders.registry import get_model  # noqa: E402
from engine.coders.train import train_coder  # noqa: E402

RESULT = "ensemble-real-nace-full"
# --redirected: the notes with the excluded activities other codes send to each code (the product's default);
# --coverage: the lexical coder with its coverage and prior terms (the product's default). Without them, as
# the earlier files were measured. Each names its models and result file apart.
REDIRECTED = False
COVERAGE = False
HEADS = False


def trained(project, name: str, **kwargs) -> int:
    name += " (redirected notes)" if REDIRECTED else ""
    model_id = model_by_name(project, name)
    if model_id is None:
        print(f"[{now()}] training {name}", file=sys.stderr, flush=True)
        model_id = train_coder(project, DataMix(notes=1, real=1, validation_share=0.1, redirected_notes=REDIRECTED),
                               name=name, make_default=False, **kwargs).model_id
    return model_id


def run(lexical: bool = False, grams: int = 0) -> dict:
    project = open_work()
    kinds = (*MEMBERS, "lexical") if lexical else MEMBERS
    options = LexicalOptions(grams=grams) if COVERAGE else LexicalOptions(grams=grams, coverage=0.0, prior=0.0)
    variant = (f" ({grams}-grams)" if grams else "") + (
        f" (coverage {options.coverage:g}, prior {options.prior:g})" if COVERAGE else "")
    ids = {kind: trained(project, f"bench real+notes member: {kind}" + (variant if kind == "lexical" else ""),
                         kind=kind, lexical=options) for kind in kinds}
    coders = {f"{kind} alone": ids[kind] for kind in kinds}
    coders["mean ensemble (fastText, embedding)"] = trained(
        project, "bench real+notes ensemble: mean", kind="ensemble", combination="mean",
        members=[ids["fasttext"], ids["embedding"]])
    coders["log ensemble (knn, embedding, fastText)"] = trained(
        project, "bench real+notes ensemble: log", kind="ensemble", combination="log",
        members=[ids[k] for k in MEMBERS], heads=0.0)
    if lexical:
        coders["log ensemble (knn, embedding, fastText, lexical)"] = trained(
            project, "bench real+notes ensemble: log with lexical" + variant, kind="ensemble", combination="log",
            members=[ids[k] for k in kinds], heads=0.0)
        if HEADS:
            coders["log ensemble (knn, embedding, fastText, lexical) + title heads"] = trained(
                project, "bench real+notes ensemble: log with lexical" + variant + " (title heads)", kind="ensemble",
                combination="log", members=[ids[k] for k in kinds])
    rows = real_rows(project, "test")
    out = {}
    for label, model_id in coders.items():
        record = get_model(project, model_id)
        out[label] = {**score_coder(project, model_id, rows), "validation": record.validation,
                      "weights": record.params.get("weights"), "title_heads": record.params.get("title_heads")}
        print(f"[{now()}] {label}: {out[label]['top1']:.3f}", file=sys.stderr, flush=True)
    return {"test": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ensemble_real", description=__doc__.splitlines()[0])
    parser.add_argument("--lexical", action="store_true", help="add the lexical (BM25) coder as a fourth member")
    parser.add_argument("--grams", type=int, default=0,
                        help="the lexical coder's terms: words and their character N-grams (0: words only)")
    parser.add_argument("--redirected", action="store_true",
                        help="the notes also hold the excluded activities other codes send to each code")
    parser.add_argument("--coverage", action="store_true", help="the lexical coder's coverage and prior terms")
    parser.add_argument("--heads", action="store_true", help="also the four with the title heads, as the product "
                        "trains them now (the weight chosen on the validation carve)")
    args = parser.parse_args(argv)
    if (args.grams or args.coverage) and not args.lexical:
        parser.error("--grams and --coverage are the lexical coder's: give --lexical too")
    if args.heads and not args.lexical:
        parser.error("--heads adds to the four-member ensemble: give --lexical too")
    global REDIRECTED, COVERAGE, HEADS
    REDIRECTED, COVERAGE, HEADS = args.redirected, args.coverage, args.heads
    result = {"command": command_line("bench.ensemble_real", argv), "created": now(), "machine": machine(),
              **run(args.lexical, args.grams)}
    lines = ["# The 'log' ensemble with real coded texts, all of NACE (UK SIC index): real-train + notes", "",
             "Command: `" + result["command"] + "`", "",
             f"Created {result['created']}. {result['machine']['note']}.", "",
             "Coders trained on the NACE notes and the real-train half through the product's path; weights chosen on "
             "the product's 10 % validation carve of real-train (never the test half), then the test half read "
             "once.", "",
             "| coder | validation top-1 | test top-1 | test top-5 | n | weights |", "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['validation']['top1']:.1%} | {v['top1']:.1%} | {v['top5']:.1%} | {v['n']:,} | "
              f"{v['weights'] or ''} |" for k, v in result["test"].items()]
    lines += [""] + [f"The title heads' weight, chosen on the carve from {[g['beta'] for g in v['title_heads']['grid']]}: "
              f"{v['title_heads']['beta']:g} (validation top-1 per weight: "
              + ", ".join(f"{g['beta']:g}: {g['top1']:.1%}" for g in v['title_heads']['grid']) + ")."
              for k, v in result["test"].items() if (v.get("title_heads") or {}).get("from") == "validation"]
    lines.append("")
    name = RESULT.replace("real-", "real-lexical-" + (f"grams{args.grams}-" if args.grams else "")) if args.lexical \
        else RESULT
    name = name.replace("-nace-full", ("-redirected" if REDIRECTED else "") + ("-coverage" if COVERAGE else "")
                        + ("-heads" if HEADS else "") + "-nace-full")
    write_result(name, result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
