"""Protocol Q: train one coder per arm on the same settings and evaluate every arm on the same real test half.

    python -m bench.run --benchmark nace-uksic --subset 10,11 --arms notes,real,real+notes
    python -m bench.run --benchmark nace-uksic --subset 10,11 --arms zero-real,few-shot \\
        --project bench/projects/nace-10-11.statcoder --run-id 3

Synthetic samples come from an existing generation run in the project file: evaluation never regenerates.
Results are merged into bench/results/<name>.json (+ .md), so later arms add to earlier ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import datetime as dt
import sys
import time
from typing import Any, Callable

from engine.evaluate.metrics import evaluate_model
from engine.store.project import Project
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.data import DataMix
from engine.classification import leaf_codes_under

from .common import BENCHMARKS, command_line, load_result, machine, now, open_benchmark_project, pct, write_result

ARMS = ("notes", "zero-real", "real", "real+notes", "few-shot")


def arm_mix(arm: str, codes: list[str] | None, run_ids: list[int] | None, augmented: int = 0) -> DataMix:
    """The data of each arm (BENCHMARK.md). The whole real-train half trains: no validation carve here,
    because every arm uses the same fixed settings, chosen beforehand on validation (bench.sweep)."""
    needs_run = arm in ("zero-real", "few-shot")
    if needs_run and not run_ids:
        raise SystemExit(f"arm '{arm}' needs --run-id (a generation run in --project)")
    weights = {"notes": dict(notes=1), "zero-real": dict(notes=1, synthetic=1), "real": dict(notes=0, real=1),
               "real+notes": dict(notes=1, real=1), "few-shot": dict(notes=1, real=1, synthetic=1)}[arm]
    if augmented and weights.get("real"):
        weights["augmented"] = augmented     # classical augmentation of real-train texts (engine.realdata.augment)
    return DataMix(**weights, run_ids=list(run_ids) if needs_run else None, codes=codes,  # type: ignore[arg-type]
                   validation_share=0)


def _one_run(project: Project, run_id: int) -> dict[str, Any]:
    row = project.conn.execute("SELECT name, model_name, model_sha256, created, finished FROM generation_runs"
                               " WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise SystemExit(f"generation run {run_id} is not in {project.path}")
    # Time spent generating, request by request: right also for runs that were paused and resumed.
    seconds = project.conn.execute("SELECT SUM(seconds) FROM generation_units WHERE run_id = ?", (run_id,)).fetchone()[0]
    if seconds is None and row[3] and row[4]:
        parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
        seconds = (parse(row[4]) - parse(row[3])).total_seconds()
    samples = project.conn.execute("SELECT COUNT(*), SUM(status = 'accepted') FROM samples WHERE run_id = ?",
                                   (run_id,)).fetchone()
    return {"run_id": run_id, "run_name": row[0], "model": {"name": row[1], "sha256": row[2]},
            "generation_s": round(seconds, 1) if seconds is not None else None,
            "samples_generated": samples[0], "samples_accepted": samples[1] or 0}


def generation_info(project: Project, run_ids: list[int] | None) -> dict[str, Any]:
    """Provenance of the synthetic samples an arm used: one run's facts, or several runs' summed."""
    if not run_ids:
        return {}
    runs = [_one_run(project, run_id) for run_id in run_ids]
    if len(runs) == 1:
        return runs[0]
    times = [r["generation_s"] for r in runs]
    return {"run_ids": list(run_ids), "runs": runs, "model": runs[0]["model"],
            "generation_s": None if None in times else round(sum(times), 1),
            "samples_generated": sum(r["samples_generated"] for r in runs),
            "samples_accepted": sum(r["samples_accepted"] for r in runs)}


def run_embedding_arm(project: Project, arm: str, mix: DataMix) -> tuple[int, dict[str, Any]]:
    from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding

    result = train_embedding(project, _validated(arm, mix),
                                   EmbeddingTrainOptions(name=f"bench {arm} embedding", make_default=False))
    return result.model_id, {"model_sha256": result.sha256, "train_s": round(result.train_s, 2),
                             "n_train": result.composition["train_lines"], "sources": result.composition["counts"],
                             "validation": result.validation, "fit": {k: v for k, v in result.params["fit"].items()
                                                                      if k in ("c", "temperature", "val_top1")}}


def run_ensemble_arm(project: Project, arm: str, mix: DataMix) -> tuple[int, dict[str, Any]]:
    from engine.coders.registry import get_model
    from engine.coders.train import train_coder

    # 'mean' of fastText and the embedding regression: the ensemble the committed bench.run results measured
    trained = train_coder(project, _validated(arm, mix), kind="ensemble", name=f"bench {arm} ensemble",
                          make_default=False, combination="mean")
    members = [get_model(project, m) for m in trained.params["members"]]
    return trained.model_id, {"model_sha256": trained.sha256, "train_s": round(trained.train_s or 0, 2),
                              "n_train": members[0].data["train_lines"], "sources": members[0].data["counts"],
                              "validation": trained.validation, "weights": trained.params["weights"]}


def _validated(arm: str, mix: DataMix) -> DataMix:
    """Embedding and ensemble coders choose C, temperature and weights on a validation carve. Arms without
    real text carve it from their own training pairs, so no real text tunes them."""
    no_real = arm in ("notes", "zero-real")
    return dataclasses.replace(mix, validation_share=0.1, validation_from="training" if no_real else "real")


def run_fasttext_arm(project: Project, arm: str, mix: DataMix) -> tuple[int, dict[str, Any]]:
    result = train_fasttext(project, mix, TrainOptions(name=f"bench {arm}", make_default=False))
    return result.model_id, {"model_sha256": result.sha256, "train_s": round(result.train_s, 2),
                             "n_train": result.composition["train_lines"], "sources": result.composition["counts"]}


# coder kind -> trains one arm, returning (model id, facts). The embedding coder's module adds its kinds here.
CODER_ARMS: dict[str, Callable[[Project, str, DataMix], tuple[int, dict[str, Any]]]] = {
    "fasttext": run_fasttext_arm, "embedding": run_embedding_arm, "ensemble": run_ensemble_arm}


def run_arm(project: Project, arm: str, coder: str, codes: list[str] | None, run_ids: list[int] | None,
            augmented: int = 0) -> dict[str, Any]:
    mix = arm_mix(arm, codes, run_ids, augmented)
    started = time.perf_counter()
    model_id, facts = CODER_ARMS[coder](project, arm, mix)
    evaluation, _ = evaluate_model(project, model_id, split="test", codes=codes, dataset=f"bench {arm} {coder}")
    fb = evaluation.fallback
    at5 = evaluation.thresholds.get("prob@0.05", {})
    out = {"coder": coder, "top1": round(evaluation.top1, 4), "top5": round(evaluation.top5, 4),
           "macro_f1": round(evaluation.macro_f1, 4),
           "per_level": {k: round(v, 4) for k, v in evaluation.per_level.items()},
           "n_test": evaluation.n, "ece": round(evaluation.ece, 4),
           "auto_code_at_5pct_error": {"threshold": at5.get("threshold"), "coverage": at5.get("coverage")},
           "fallback": {"threshold": fb.threshold, "share_unsure": round(fb.share_unsure, 4),
                        "parent_accuracy_unsure": fb.parent_accuracy_unsure,
                        "accuracy_with_fallback": round(fb.accuracy_with_fallback, 4)} if fb else None,
           "model_id": model_id, **facts, "arm_s": round(time.perf_counter() - started, 1),
           "project": os.path.relpath(project.path)}
    if run_ids and arm in ("zero-real", "few-shot"):
        info = generation_info(project, run_ids)
        out.update(generation_s=info.get("generation_s"), samples_used=facts.get("sources", {}).get("synthetic"),
                   generation_run=info)
    else:
        out.update(generation_s=0, samples_used=0)
    return out


def _arm_label(name: str, arm: dict[str, Any]) -> str:
    """The arm's key without its coder: 'zero-real curated ensemble' -> 'zero-real curated'."""
    suffix = " " + arm["coder"]
    return name[: -len(suffix)] if name.endswith(suffix) else name


def markdown(result: dict[str, Any]) -> str:
    levels = next((list(a["per_level"]) for a in result["arms"].values()), [])
    lines = [f"# {result['benchmark']} {'subset ' + ','.join(result['subset']) if result['subset'] else 'all codes'}",
             "", f"Commands: " + "; ".join(f"`{c}`" for c in result.get("commands", [result["command"]])), "",
             f"Created {result['created']}. {result['machine']['note']}.", "",
             *([result["note"], ""] if result.get("note") else []),
             "| arm | coder | top-1 | top-5 | macro-F1 | " + " | ".join(levels) + " | n_train | n_test | generation s | train s | model sha256 |",
             "|---|---|---|---|---|" + "---|" * len(levels) + "---|---|---|---|---|"]
    for name, arm in result["arms"].items():
        lines.append(f"| {_arm_label(name, arm)} | {arm['coder']} | {pct(arm['top1'])} | {pct(arm['top5'])} | "
                     f"{arm['macro_f1']:.3f} | " + " | ".join(pct(arm['per_level'].get(l)) for l in levels)
                     + f" | {arm['n_train']} | {arm['n_test']} | {arm.get('generation_s') or 0} | {arm['train_s']} | "
                     f"`{arm['model_sha256'][:12]}` |")
    lines += ["", "Calibration and auto-coding (top probability threshold for <= 5 % error, and the share it auto-codes):", "",
              "| arm | coder | ECE | threshold @5 % | auto-coded | share unsure (p < 0.5) | parent right when unsure | accuracy with fallback (leaf if sure, parent if not) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, arm in result["arms"].items():
        a5 = arm["auto_code_at_5pct_error"]
        thr = "–" if a5["threshold"] is None else f"{a5['threshold']:.2f}"
        fb = arm.get("fallback") or {}
        lines.append(f"| {_arm_label(name, arm)} | {arm['coder']} | {arm['ece']:.3f} | {thr} | {pct(a5['coverage'])} | "
                     f"{pct(fb.get('share_unsure'))} | {pct(fb.get('parent_accuracy_unsure'))} | {pct(fb.get('accuracy_with_fallback'))} |")
    lines += ["", "The @5 % threshold above is read off the test half for reporting only; the product chooses "
              "its threshold on the validation carve of real-train (`statcoder evaluate --split validation`).", ""]
    return "\n".join(lines)


def _run_ids(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a run id or a comma-separated list of them") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), required=True)
    parser.add_argument("--subset", default="", help="Top codes to restrict to, e.g. NACE divisions 10,11; empty = all.")
    parser.add_argument("--arms", default="notes,real,real+notes", help=f"Comma-separated, of: {', '.join(ARMS)}.")
    parser.add_argument("--coders", default="fasttext", help="Comma-separated coder kinds (fasttext, embedding, ensemble).")
    parser.add_argument("--project", help="Project file to use (needed for arms with synthetic samples).")
    parser.add_argument("--run-id", type=_run_ids, help="Generation run(s) whose accepted samples the zero-real arm "
                                                          "uses, e.g. 1 or 1,2.")
    parser.add_argument("--few-shot-run-id", type=_run_ids, help="Generation run(s) for the few-shot arm "
                                                                 "(default: --run-id).")
    parser.add_argument("--augmented", type=int, default=0,
                        help="Weight of augmented real-train texts in arms that use real text (run `statcoder augment` first).")
    parser.add_argument("--label", default="", help="Appended to the arm names, e.g. 'curated' after a curation.")
    parser.add_argument("--name", help="Result file name in bench/results (default: <benchmark>-<subset or full>).")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    coders = [c.strip() for c in args.coders.split(",") if c.strip()]
    for arm in arms:
        if arm not in ARMS:
            parser.error(f"unknown arm '{arm}'")
    for coder in coders:
        if coder not in CODER_ARMS:
            parser.error(f"coder '{coder}' is not available here (available: {', '.join(CODER_ARMS)})")
    subset = [s.strip() for s in args.subset.split(",") if s.strip()]
    project = open_benchmark_project(args.benchmark, args.project)
    codes = leaf_codes_under(project, subset) if subset else None
    name = args.name or f"{args.benchmark}-{'-'.join(subset) if subset else 'full'}"
    result = load_result(name) or {"benchmark": args.benchmark, "subset": subset, "arms": {}, "commands": []}
    command = command_line("bench.run", argv)
    result.update(command=command, created=now(), machine=machine(),
                  settings={k: v for k, v in vars(DEFAULT_PARAMS).items()},
                  codes=len(codes) if codes is not None else project.conn.execute(
                      "SELECT COUNT(*) FROM codes WHERE is_leaf").fetchone()[0],
                  project=os.path.relpath(project.path))
    result["commands"] = [c for c in result.get("commands", []) if c != command] + [command]
    for arm in arms:
        run_ids = args.few_shot_run_id or args.run_id if arm == "few-shot" else args.run_id
        for coder in coders:
            print(f"[{now()}] {args.benchmark} {arm} {coder} ...", file=sys.stderr, flush=True)
            key = " ".join(p for p in (arm, args.label, "" if coder == "fasttext" else coder) if p)
            result["arms"][key] = run_arm(project, arm, coder, codes, run_ids, args.augmented)
            if arm in ("zero-real", "few-shot") and result["arms"][key].get("generation_run"):
                result["model"] = result["arms"][key]["generation_run"]["model"]
            a = result["arms"][key]
            print(f"    top-1 {pct(a['top1'])}  top-5 {pct(a['top5'])}  macro-F1 {a['macro_f1']:.3f}  "
                  f"n_train {a['n_train']}  n_test {a['n_test']}  train {a['train_s']} s", file=sys.stderr, flush=True)
            write_result(name, result, markdown(result))
    result.setdefault("model", {"name": None, "sha256": None, "note": "no LLM in these arms"})
    json_path, md_path = write_result(name, result, markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
