"""Does batched generation keep the quality? The same runs generated one at a time and batched, on dev.

Issue 13 asks that zero-real fastText on NACE 10-11, with the same quota and strategies, stay within 1.5
points of the committed one-at-a-time set once generation is batched. This script compares the two sets
on the development set (the real-train half; the test half is never read here). The test half is read
once afterwards, with the bench suite's own zero-real arm on the batched project:

    python -m bench.batched_quality --reference bench/projects/nace-10-11.statcoder \\
        --batched bench/projects/nace-10-11-batched.statcoder --run-id 1 --run-id 2
    python -m bench.run --benchmark nace-uksic --subset 10,11 --arms zero-real --coders fasttext \\
        --project bench/projects/nace-10-11-batched.statcoder --run-id 1,2 --name nace-uksic-10-11-batched

fastText is trained single-threaded with a fixed seed, so retraining gives the same model; a paired
bootstrap over the dev texts says how much of a difference is the luck of the dev half.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from engine.classification import leaf_codes_under
from engine.classification.note_lines import notes_pairs
from engine.coders.fasttext.model import FastTextCoder
from engine.realdata.importing import real_texts
from engine.store.project import Project

from .common import command_line, machine, now, write_result
from .curation_dev import PARAMS

NAME = "batched-quality-dev-nace-10-11"


def _set(path: str, run_ids: list[int], subset: list[str]) -> dict:
    # Read a copy: opening a project migrates it, and the committed files must not change.
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(path).name
        shutil.copy(path, copy)
        return _read(copy, run_ids, subset)


def _read(path: Path, run_ids: list[int], subset: list[str]) -> dict:
    with Project.open(path) as project:
        codes = leaf_codes_under(project, subset)
        notes = list(notes_pairs(project, codes))
        dev = real_texts(project, "train", codes)
        marks = ",".join("?" * len(run_ids))
        samples = project.conn.execute(
            f"SELECT text, code, strategy FROM samples WHERE run_id IN ({marks}) AND status = 'accepted' "
            "ORDER BY id", run_ids).fetchall()
        runs = project.conn.execute(
            f"SELECT id, name, params FROM generation_runs WHERE id IN ({marks})", run_ids).fetchall()
    pairs = [(t, c) for t, c, _ in samples]
    return {"notes": notes, "dev": dev, "pairs": pairs, "strategies": dict(Counter(s for _, _, s in samples)),
            "distinct_texts": len({t.casefold() for t, _ in pairs}),
            "runs": [{"id": i, "name": n, "hardware": json.loads(p).get("backend", {}).get("hardware")}
                     for i, n, p in runs]}


def _interval(a: np.ndarray, b: np.ndarray, resamples: int) -> list[float]:
    """Paired bootstrap over the dev texts (every set is scored on the same texts): a 95 % interval of
    b's top-1 minus a's, i.e. how much of a difference is the luck of which texts the dev half holds."""
    draws = np.random.default_rng(0).integers(0, len(a), size=(resamples, len(a)))
    diffs = b[draws].mean(axis=1) - a[draws].mean(axis=1)
    return [round(100 * float(np.percentile(diffs, q)), 2) for q in (2.5, 97.5)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="Project with the committed one-at-a-time runs.")
    parser.add_argument("--batched", required=True, help="Project with the same runs generated batched.")
    parser.add_argument("--control", action="append", default=[], metavar="LABEL=PATH",
                        help="More sets of the same runs (e.g. one at a time with other seeds): the spread between "
                        "two draws of the same path, beside the batched difference.")
    parser.add_argument("--run-id", type=int, action="append", required=True)
    parser.add_argument("--subset", default="10,11")
    parser.add_argument("--bootstrap", type=int, default=2000, help="Paired bootstrap resamples of the dev texts.")
    parser.add_argument("--name", default=NAME)
    args = parser.parse_args(argv)
    subset = args.subset.split(",")
    sources = [("one at a time (committed)", args.reference), ("batched", args.batched)]
    for item in args.control:
        label, sep, path = item.partition("=")
        if not sep or not path:
            parser.error(f"--control takes LABEL=PATH, got {item!r}")
        sources.append((label, path))
    results, correct = {}, {}
    for name, path in sources:
        data = _set(path, args.run_id, subset)
        coder = FastTextCoder.train(data["notes"] + data["pairs"], PARAMS)
        predictions = coder.predict_many([t for t, _ in data["dev"]], k=1)
        correct[name] = np.array([bool(p) and p[0][0] == c for p, (_, c) in zip(predictions, data["dev"])])
        results[name] = {"project": path, "samples": len(data["pairs"]), "distinct_texts": data["distinct_texts"],
                         "strategies": data["strategies"], "runs": data["runs"],
                         "dev_top1": float(correct[name].mean()), "n_dev": len(data["dev"])}
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "runs"}), flush=True)
    reference = sources[0][0]
    for name, _ in sources[1:]:
        results[name]["minus_reference_points"] = round(100 * (results[name]["dev_top1"] - results[reference]["dev_top1"]), 2)
        results[name]["minus_reference_interval_95"] = _interval(correct[reference], correct[name], args.bootstrap)
    data = {"name": args.name, "created": now(), "command": command_line("bench.batched_quality", argv),
            "machine": machine(), "subset": subset, "run_ids": args.run_id, "arms": results,
            "difference_points": results["batched"]["minus_reference_points"],
            "difference_interval_95": results["batched"]["minus_reference_interval_95"]}
    lines = [f"# Batched vs one-at-a-time generation: zero-real fastText on the development set, NACE {args.subset}",
             "", f"Command: `{data['command']}`", "",
             f"Created {data['created']}. {data['machine']['note']}.", "",
             "Notes + the accepted synthetic samples of runs " + ", ".join(map(str, args.run_id)) + " (uncurated), "
             "fastText with the bench's settings (one thread, fixed seed: retraining gives the same model), scored on "
             f"the real-train half (dev, {results[reference]['n_dev']} texts). The test half is not read. The interval "
             "is a paired bootstrap over the dev texts.", "",
             "| set | project | samples | distinct texts | dev top-1 | minus the committed set (95 % interval) | "
             "strategies | hardware |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        hardware = "; ".join(f"run {x['id']}: threads {(x['hardware'] or {}).get('threads')}, parallel "
                             f"{(x['hardware'] or {}).get('parallel', 1)}" for x in r["runs"])
        diff = ("–" if name == reference else f"{r['minus_reference_points']:+.2f} "
                f"({r['minus_reference_interval_95'][0]:+.2f} to {r['minus_reference_interval_95'][1]:+.2f})")
        lines.append(f"| {name} | `{r['project']}` | {r['samples']} | {r['distinct_texts']} | "
                     f"{100 * r['dev_top1']:.1f} % | {diff} | {r['strategies']} | {hardware} |")
    lines.append("")
    write_result(args.name, data, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
