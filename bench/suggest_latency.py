"""`suggest` latency of every coder kind, as the coding panel calls it: one text at a time, embedding included.

    python -m bench.suggest_latency --project bench/work/nace-full.statcoder

Trains a real+notes coder of each kind on all of NACE (or reuses the newest ones named
"latency <kind>"), then times engine.assist.coding.suggest over 1,000 real-train phrases (never the test
half). Run it on a quiet machine: the figure is a latency, and contention shows up in p95.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

from engine.coders.registry import clear_coder_cache, list_models
from engine.assist.coding import suggest
from engine.store.project import Project
from engine.realdata.importing import real_texts
from engine.coders.data import DataMix
from engine.coders.fasttext.training import TrainOptions, train_fasttext

from .common import command_line, machine, now, write_result
from .perf import _percentile


def _model_id(project: Project, kind: str, mix: DataMix, fresh: bool = False) -> int:
    name = f"latency {kind}"
    for record in reversed(list_models(project) if not fresh else []):
        if record.name == name:
            return record.id
    if kind == "fasttext":
        return train_fasttext(project, mix, TrainOptions(name=name, make_default=False)).model_id
    from engine.coders.ensemble import train_ensemble
    from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding

    if kind == "embedding":
        return train_embedding(project, mix, EmbeddingTrainOptions(name=name, make_default=False)).model_id
    if kind == "log-ensemble":   # what the product trains now: kNN x embeddings x fastText x lexical
        from engine.coders.train import train_coder

        return train_coder(project, mix, kind="ensemble", name=name, make_default=False).model_id
    if kind == "log-ensemble-heads":   # the same members, with the title heads at the zero-real weight
        from engine.coders.heads import ZERO_REAL_BETA
        from engine.coders.registry import get_model

        members = get_model(project, _model_id(project, "log-ensemble", mix, fresh)).params["members"]
        return train_ensemble(project, mix, members=members, combination="log", heads=ZERO_REAL_BETA,
                              name=name, make_default=False).model_id
    return train_ensemble(project, mix, members=[_model_id(project, "fasttext", mix, fresh),
                                                 _model_id(project, "embedding", mix, fresh)],
                          name=name, make_default=False).model_id


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--phrases", type=int, default=1000)
    parser.add_argument("--kinds", default="fasttext,embedding,ensemble",
                        help="comma-separated: fasttext, embedding, ensemble (the mean of fastText and embeddings), "
                             "log-ensemble (the product's default ensemble of four), log-ensemble-heads (its "
                             "members with the title heads, engine.coders.heads)")
    parser.add_argument("--result", default="suggest-latency-nace-full", help="result file name (bench/results/)")
    parser.add_argument("--fresh", action="store_true", help="train the coders again even where the project holds "
                        "ones of the same name (after the product changed how it trains them)")
    args = parser.parse_args(argv)
    project = Project.open(args.project)
    mix = DataMix(notes=1, real=1)
    phrases = [t for t, _ in real_texts(project, "train")][: args.phrases]
    rows = {}
    for kind in args.kinds.split(","):
        model_id = _model_id(project, kind, mix, args.fresh)
        clear_coder_cache()
        start = time.perf_counter()
        suggest(project, "warm up", model=model_id)
        first = time.perf_counter() - start
        timings = []
        for text in phrases:
            t0 = time.perf_counter()
            suggest(project, text, 5, model=model_id)
            timings.append((time.perf_counter() - t0) * 1000)
        rows[kind] = {"model_id": model_id, "first_suggest_s": round(first, 3), "n": len(timings),
                      "p50_ms": round(statistics.median(timings), 2), "p95_ms": round(_percentile(timings, 0.95), 2),
                      "max_ms": round(max(timings), 2)}
        print(kind, rows[kind], flush=True)
    load = os.getloadavg()
    data = {"command": command_line("bench.suggest_latency", argv), "created": now(), "machine": machine(),
            "load_avg_at_end": load, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "coders": rows, "target_p95_ms": 20.0}
    lines = ["# suggest latency per coder (all of NACE, real-train + notes coders)", "",
             f"`{data['command']}`; {data['created']}; {os.cpu_count()} cores, load average {load[0]:.2f} / "
             f"{load[1]:.2f} at the end.", "",
             "| coder | p50 | p95 | max | first suggest (loads the model) | p95 ≤ 20 ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['max_ms']} ms | {r['first_suggest_s']} s | "
              f"{'yes' if r['p95_ms'] <= 20 else 'no'} |" for k, r in rows.items()]
    write_result(args.result, data, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
