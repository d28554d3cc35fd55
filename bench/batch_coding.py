"""Batch coding a CSV with each coder kind: rows/s for fastText, the embedding coder and their ensemble.

Issue 13 asks for the embedding coder's batch-coding rate beside fastText's. Each coder is trained on
notes + real-train (all codes, the default validation carve), then codes the same CSV: the first N texts of the
test half, cycled (test texts are never in a training set, so the embedding cache that training fills
cannot serve them; batch coding does not use that cache anyway). Rows/s includes reading and writing
the CSV and the top-5 ranking, i.e. what `statcoder code batch` does.

    python -m bench.batch_coding --project bench/work/nace-uksic.statcoder --rows 15000
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import tempfile
import time
from pathlib import Path

from engine.assist.coding import batch_code_csv
from engine.coders.data import DataMix
from engine.coders.registry import clear_coder_cache
from engine.coders.train import train_coder

from .common import command_line, machine, now, open_benchmark_project, write_result

# "ensemble" is the mean of fastText and embeddings the committed result measured; "log-ensemble" the product's
# default ensemble now (kNN x embeddings x fastText x lexical, trained with its members).
KINDS = ("fasttext", "embedding", "ensemble", "log-ensemble")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_coding", description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="a project holding NACE and the UK SIC index (default: bench/work)")
    parser.add_argument("--rows", type=int, default=15_000)
    parser.add_argument("--kind", action="append", choices=KINDS,
                        help="coder kinds (default: fasttext, embedding, ensemble)")
    parser.add_argument("--result", help="result file name (default: batch-coding-ROWS-nace-full)")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args(argv)
    project = open_benchmark_project("nace-uksic", args.project)
    kinds = args.kind or list(KINDS[:3])
    texts = [t for (t,) in project.conn.execute("SELECT text FROM real_texts WHERE split = 'test' ORDER BY id")]
    arms: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="statcoder-batch-") as tmp:
        src = Path(tmp) / "batch.csv"
        with open(src, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            for i, text in zip(range(args.rows), itertools.cycle(texts)):
                writer.writerow([i, text])
        for kind in kinds:
            start = time.perf_counter()
            # Every coder on the same mix (the default validation carve), so the ensemble can combine the two.
            members = [arms[k]["model_id"] for k in ("fasttext", "embedding") if k in arms]
            if kind == "log-ensemble":
                trained = train_coder(project, DataMix(notes=1, real=1), kind="ensemble", name=f"bench batch {kind}",
                                      make_default=False, combination="log")
            else:
                trained = train_coder(project, DataMix(notes=1, real=1), kind=kind, name=f"bench batch {kind}",
                                      make_default=False, members=(members or None) if kind == "ensemble" else None,
                                      combination="mean")   # the ensemble of two that the committed result measured
            train_s = time.perf_counter() - start
            clear_coder_cache()
            result = batch_code_csv(project, src, Path(tmp) / f"out-{kind}.csv", text_column="text",
                                    threshold=args.threshold, model=trained.model_id)
            arms[kind] = {"model_id": trained.model_id, "train_s": round(train_s, 1), "rows": result.rows,
                          "batch_s": round(result.seconds, 2), "rows_per_s": round(result.rows_per_s, 1),
                          "auto_share": round(result.auto / result.rows, 4) if result.rows else 0.0}
            print(f"{kind}: {arms[kind]}", file=sys.stderr, flush=True)
    data = {"benchmark": "nace-uksic", "command": command_line("bench.batch_coding", argv), "created": now(),
            "machine": machine(), "perf": {"rows": args.rows, "threshold": args.threshold, "arms": arms}}
    lines = [f"# Batch coding a {args.rows}-row CSV, per coder kind (all of NACE)", "",
             f"Command: `{data['command']}`. Created {data['created']}. {data['machine']['note']}.", "",
             "Each coder trained on notes + real-train (all 615 codes, default validation carve); the CSV is the test half's texts, cycled. "
             "Rows/s covers reading, coding (top 5) and writing the file. The ensemble combines the two coders above "
             "(its training time is only its weight fit).", "",
             "| coder | rows/s | seconds | auto-coded at threshold | training s |", "|---|---|---|---|---|"]
    for kind, arm in arms.items():
        lines.append(f"| {kind} | {arm['rows_per_s']} | {arm['batch_s']} | {arm['auto_share'] * 100:.1f} % "
                     f"(≥ {args.threshold}) | {arm['train_s']} |")
    lines.append("")
    write_result(args.result or f"batch-coding-{args.rows}-nace-full", data, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
