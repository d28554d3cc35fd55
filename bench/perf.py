"""Protocol P figures that need no LLM: training time, suggest latency, batch-coding rate, peak memory.

    python -m bench.perf --benchmark nace-uksic

Generation efficiency, scale-out and the GUI figures belong to the generation and desktop benches.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.coders.registry import clear_coder_cache, load_coder
from engine.assist.coding import batch_code_csv, suggest
from engine.coders.fasttext.bindings import preprocess, write_training_file
from engine.classification.note_lines import notes_pairs
from engine.realdata.importing import real_texts
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.data import DataMix
from engine.coders.fasttext.child import run_child_training

from .common import BENCHMARKS, command_line, machine, now, open_benchmark_project, write_result

TRAIN_SIZES = (10_000, 100_000)
TARGETS = {"train_100k_s": 60.0, "suggest_p95_ms": 20.0}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def training_times(pairs: list[tuple[str, str]], folder: Path) -> dict[str, dict[str, float]]:
    """Train on the first N lines of the cycled real-train + notes pairs, through the child-process trainer."""
    out = {}
    for size in TRAIN_SIZES:
        train_file = folder / f"train-{size}.txt"
        write_training_file(itertools.islice(itertools.cycle(pairs), size), train_file)
        start, cpu = time.perf_counter(), _children_cpu_s()
        result = run_child_training(train_file, folder / f"model-{size}.bin", DEFAULT_PARAMS)
        out[str(size)] = {"wall_s": round(time.perf_counter() - start, 2), "fit_s": result["train_s"],
                          "child_cpu_s": round(_children_cpu_s() - cpu, 1)}
        print(f"train {size}: {out[str(size)]}", file=sys.stderr, flush=True)
        (folder / f"model-{size}.bin").unlink()   # the training file stays for the hs run below
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="nace-uksic")
    parser.add_argument("--project")
    parser.add_argument("--phrases", type=int, default=1000)
    parser.add_argument("--batch-rows", type=int, default=15_000)
    args = parser.parse_args(argv)
    project = open_benchmark_project(args.benchmark, args.project)
    train_pairs = real_texts(project, "train") + list(notes_pairs(project))
    perf: dict = {"settings": vars(DEFAULT_PARAMS)}
    with tempfile.TemporaryDirectory(prefix="statcoder-perf-") as tmp:
        perf["train_s"] = training_times(train_pairs, Path(tmp))
        # The sweep's fast alternative: hierarchical softmax, same data, 100k lines.
        hs_file = Path(tmp) / "train-100000.txt"
        start, cpu = time.perf_counter(), _children_cpu_s()
        hs = run_child_training(hs_file, Path(tmp) / "model-hs.bin", dataclasses.replace(DEFAULT_PARAMS, loss="hs"))
        perf["train_s"]["100000-hs"] = {"wall_s": round(time.perf_counter() - start, 2), "fit_s": hs["train_s"],
                                        "child_cpu_s": round(_children_cpu_s() - cpu, 1)}
        print(f"train 100000 hs: {perf['train_s']['100000-hs']}", file=sys.stderr, flush=True)
        perf["train_child_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)

        serving = train_fasttext(project, DataMix(notes=1, real=1, validation_share=0),
                              TrainOptions(name="perf real+notes", make_default=False))
        perf["serving_model"] = {"model_id": serving.model_id, "sha256": serving.sha256,
                                 "train_lines": serving.composition["train_lines"], "train_s": round(serving.train_s, 2)}
        clear_coder_cache()
        start = time.perf_counter()
        suggest(project, "warm up", model=serving.model_id)
        perf["first_suggest_s"] = round(time.perf_counter() - start, 3)   # loads the model file
        phrases = [t for t, _ in train_pairs if t][: args.phrases]
        coder, _ = load_coder(project, serving.model_id)
        timings, bare = [], []
        for text in phrases:
            t0 = time.perf_counter()
            suggest(project, text, 5, model=serving.model_id)
            t1 = time.perf_counter()
            coder.model.predict(preprocess(text) or " ", k=5)
            t2 = time.perf_counter()
            timings.append((t1 - t0) * 1000)
            bare.append((t2 - t1) * 1000)
        perf.update(suggest_n=len(phrases), suggest_p50_ms=round(statistics.median(timings), 3),
                    suggest_p95_ms=round(_percentile(timings, 0.95), 3),
                    bare_predict_p50_ms=round(statistics.median(bare), 3),
                    bare_predict_p95_ms=round(_percentile(bare, 0.95), 3))
        src, dst = Path(tmp) / "batch.csv", Path(tmp) / "batch-coded.csv"
        texts = [t for (t,) in project.conn.execute("SELECT text FROM real_texts ORDER BY id")]
        with open(src, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            for i, text in zip(range(args.batch_rows), itertools.cycle(texts)):
                writer.writerow([i, text])
        batch = batch_code_csv(project, src, dst, text_column="text", threshold=0.5, model=serving.model_id)
        perf.update(batch_rows=batch.rows, batch_s=round(batch.seconds, 2), batch_rows_per_s=round(batch.rows_per_s),
                    batch_auto_share=round(batch.auto / batch.rows, 4))
    perf["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    perf["targets"] = {
        "train_100k_le_60s": {"value_s": perf["train_s"]["100000"]["wall_s"], "met": perf["train_s"]["100000"]["wall_s"] <= 60},
        "suggest_p95_le_20ms": {"value_ms": perf["suggest_p95_ms"], "met": perf["suggest_p95_ms"] <= 20},
    }
    data = {"benchmark": args.benchmark, "command": command_line("bench.perf", argv), "created": now(), "machine": machine(),
            "perf": perf}
    t = perf["train_s"]
    md = "\n".join([
        f"# Performance (protocol P, no LLM), {args.benchmark}", "",
        f"Command: `{data['command']}`. Created {data['created']}. {data['machine']['note']} "
        f"(load average at the end: {data['machine']['load_avg_at_end']}).", "",
        "| figure | value | target | met |", "|---|---|---|---|",
        f"| fastText training, 10k lines (child process, wall) | {t['10000']['wall_s']} s (fit {t['10000']['fit_s']} s; child CPU {t['10000']['child_cpu_s']} s) | | |",
        f"| fastText training, 100k lines (child process, wall) | {t['100000']['wall_s']} s (fit {t['100000']['fit_s']} s; child CPU {t['100000']['child_cpu_s']} s = {t['100000']['child_cpu_s'] / 2:.0f} s on 2 free cores) | ≤ 60 s | "
        f"{'yes' if perf['targets']['train_100k_le_60s']['met'] else 'no'} |",
        f"| fastText training, 100k lines, loss=hs (child process, wall) | {t['100000-hs']['wall_s']} s (fit {t['100000-hs']['fit_s']} s; child CPU {t['100000-hs']['child_cpu_s']} s) | ≤ 60 s | "
        f"{'yes' if t['100000-hs']['wall_s'] <= 60 else 'no'} |",
        f"| suggest p50 / p95 over {perf['suggest_n']} real index phrases | {perf['suggest_p50_ms']} / {perf['suggest_p95_ms']} ms | p95 ≤ 20 ms | "
        f"{'yes' if perf['targets']['suggest_p95_le_20ms']['met'] else 'no'} |",
        f"| bare fastText predict p50 / p95, same phrases | {perf['bare_predict_p50_ms']} / {perf['bare_predict_p95_ms']} ms | | |",
        f"| first suggest (loads the model) | {perf['first_suggest_s']} s | | |",
        f"| batch coding a {perf['batch_rows']}-row CSV | {perf['batch_rows_per_s']} rows/s ({perf['batch_s']} s) | | |",
        f"| peak RSS, bench process (serving + batch) | {perf['peak_rss_mb']} MB | | |",
        f"| peak RSS, training child | {perf['train_child_peak_rss_mb']} MB | | |", "",
        f"Settings: {perf['settings']}. Serving model: real-train + notes, all codes, {perf['serving_model']['train_lines']} lines.",
        ""])
    write_result(f"perf-{args.benchmark}", data, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
