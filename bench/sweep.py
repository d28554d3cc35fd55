"""How the default fastText settings were chosen: a small grid scored on the validation carve of real-train.

    python -m bench.sweep --benchmark nace-uksic

The test half is never read. Each setting trains on notes + real-train minus the validation carve
(10 % of real-train by a salted hash) and is scored on that carve.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from engine.coders.fasttext.bindings import FastTextParams
from engine.coders.data import DataMix
from engine.coders.fasttext.training import TrainOptions, train_fasttext

from .common import BENCHMARKS, command_line, machine, now, open_benchmark_project, pct, write_result

BASE = FastTextParams(epoch=50, lr=0.5, wordNgrams=2, minn=3, maxn=5, dim=100, thread=2)
GRID = [
    dict(bucket=2_000_000),            # fastText's default bucket count, and the benchmark's settings
    dict(bucket=200_000),
    dict(bucket=200_000, epoch=25),
    dict(bucket=200_000, lr=0.2),
    dict(bucket=200_000, loss="hs"),   # hierarchical softmax: much faster with many labels
]


def large_set(project, args, argv) -> int:
    """100k lines (notes + real-train minus the carve, cycled) with scaled epochs, scored on the carve."""
    import itertools
    import resource
    import tempfile
    import time
    from pathlib import Path

    from engine.coders.fasttext.model import FastTextCoder
    from engine.coders.fasttext.bindings import write_training_file
    from engine.coders.fasttext.training import DEFAULT_PARAMS, scaled_epochs
    from engine.coders.data import build_training_data
    from engine.coders.fasttext.child import run_child_training
    from engine.coders.data import score_validation

    data = build_training_data(project, DataMix(notes=1, real=1, validation_share=0.1))
    rows = []
    with tempfile.TemporaryDirectory(prefix="statcoder-large-") as tmp:
        for lines in (len(data.train), 100_000):
            train_file = Path(tmp) / f"train-{lines}.txt"
            write_training_file(itertools.islice(itertools.cycle(data.train), lines), train_file)
            params = dataclasses.replace(DEFAULT_PARAMS, epoch=scaled_epochs(lines, DEFAULT_PARAMS.epoch))
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu0, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
            run_child_training(train_file, Path(tmp) / "m.bin", params)
            wall = time.perf_counter() - start
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = usage.ru_utime + usage.ru_stime - cpu0
            coder = FastTextCoder.load(Path(tmp) / "m.bin")
            val = score_validation(coder.predict_many([t for t, _ in data.validation], 5), data.validation)
            rows.append({"lines": lines, "epoch": params.epoch, "wall_s": round(wall, 1), "child_cpu_s": round(cpu, 1),
                         "validation": val})
            print(rows[-1], file=sys.stderr, flush=True)
    out = {"benchmark": args.benchmark, "command": command_line("bench.sweep", argv), "created": now(),
           "machine": machine(), "rows": rows,
           "note": "100k lines are the training lines cycled: the scaled run makes the same line-passes as the 12k run"}
    md = [f"# Scaled epochs for large training sets ({args.benchmark})", "",
          f"Command: `{out['command']}`. Created {out['created']}. {out['machine']['note']} (load {out['machine']['load_avg_at_end']}).",
          "", "| lines | epochs | val top-1 | val top-5 | wall s (contended) | trainer CPU s | ≈ s on 2 free cores |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['lines']} | {r['epoch']} | {pct(r['validation']['top1'])} | {pct(r['validation']['top5'])} | {r['wall_s']} | "
           f"{r['child_cpu_s']} | {r['child_cpu_s'] / 2:.0f} |" for r in rows]
    md += ["", out["note"] + ". With truly new lines the scaled run sees more distinct data per pass.", ""]
    write_result(f"defaults-large-{args.benchmark}", out, "\n".join(md))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="nace-uksic")
    parser.add_argument("--project")
    parser.add_argument("--large", action="store_true", help="Measure scaled epochs on 100k lines instead of the grid.")
    args = parser.parse_args(argv)
    project = open_benchmark_project(args.benchmark, args.project)
    if args.large:
        return large_set(project, args, argv)
    rows = []
    for change in GRID:
        params = dataclasses.replace(BASE, **change)
        result = train_fasttext(project, DataMix(notes=1, real=1, validation_share=0.1),
                             TrainOptions(params=params, name=f"sweep {change}", make_default=False))
        size = os.path.getsize(result.path)
        rows.append({"change": change, "validation": result.validation, "train_s": round(result.train_s, 1),
                     "model_mb": round(size / 1e6, 1)})
        print(f"{change}: val top-1 {pct(result.validation['top1'])} top-5 {pct(result.validation['top5'])} "
              f"{result.train_s:.1f}s {size / 1e6:.0f} MB", file=sys.stderr, flush=True)
        result.path.unlink()   # sweep models are not kept: only their scores matter
    data = {"benchmark": args.benchmark, "command": command_line("bench.sweep", argv), "created": now(),
            "machine": machine(), "base": dataclasses.asdict(BASE), "scored_on": "validation carve of real-train (10 %)",
            "rows": rows}
    md = [f"# Default fastText settings, chosen on validation ({args.benchmark}, all codes)", "",
          f"Command: `{data['command']}`. Created {data['created']}. Training: notes + real-train minus the validation "
          "carve; scored on the carve (10 % of real-train). The test half is not read.", "",
          f"Base: {data['base']}", "", "| change | val top-1 | val top-5 | train s | model MB |", "|---|---|---|---|---|"]
    md += [f"| {r['change']} | {pct(r['validation']['top1'])} | {pct(r['validation']['top5'])} | {r['train_s']} | "
           f"{r['model_mb']} |" for r in rows]
    md.append("")
    write_result(f"defaults-validation-{args.benchmark}", data, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
