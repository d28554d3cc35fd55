"""Protocol P, embedding throughput: the shipped MiniLM embedding texts one at a time (what
engine/coders/embedding/model.py does) against several texts per llama_decode (one sequence id per
text, pooled per sequence), and how far the batched vectors are from the one-at-a-time ones.

    PYTHONPATH=. python -m bench.embedding_throughput --texts 512 --threads 1

Texts are the UK SIC index entries of NACE divisions 10-11 (real coded texts, short like the ones
coders see). Arms alternate round by round so the shared machine's load hits all of them alike.
Writes bench/results/embedding-throughput.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import command_line, machine, now, write_result
from engine.classification import import_builtin
from engine.coders.embedding.model import DEFAULT_MODEL_SHA256, MAX_TOKENS, default_model_path
from engine.realdata.importing import import_preset
from engine.store.project import Project

NAME = "embedding-throughput"


def _texts(limit: int) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "emb.statcoder") as project:
        import_builtin(project, "nace2")
        import_preset(project, "uksic-index")
        rows = project.conn.execute("SELECT text FROM real_texts WHERE code LIKE '10%' OR code LIKE '11%'"
                                    " ORDER BY id LIMIT ?", (limit,)).fetchall()
    return [r[0] for r in rows]


def _model(batch_tokens: int, threads: int):
    from llama_cpp import Llama

    return Llama(str(default_model_path()), embedding=True, n_ctx=batch_tokens, n_batch=batch_tokens,
                 n_ubatch=batch_tokens, n_threads=threads, n_threads_batch=threads, verbose=False)


def _unit(rows) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="64,128,256,512,2048", help="tokens per llama_decode (batched arms)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    command = "PYTHONPATH=. " + command_line("bench.embedding_throughput", argv)
    texts = _texts(args.texts)
    sizes = [int(x) for x in args.batches.split(",") if x.strip()]
    # One at a time: the model as engine/coders/embedding/model.py opens it (context = MAX_TOKENS).
    models = {"one at a time": _model(MAX_TOKENS, args.threads), **{f"{b} tokens": _model(b, args.threads)
                                                                    for b in sizes}}
    rates: dict[str, list[float]] = {name: [] for name in models}
    vectors: dict[str, np.ndarray] = {}
    try:
        for _ in range(args.rounds):
            for name, model in models.items():
                start = time.perf_counter()
                if name == "one at a time":
                    rows = [model.embed(t, truncate=True) for t in texts]
                else:
                    rows = model.embed(texts, truncate=True)
                rates[name].append(len(texts) / (time.perf_counter() - start))
                vectors[name] = _unit(rows)
    finally:
        for model in models.values():
            model.close()
    single = vectors["one at a time"]
    arms = {}
    for name in models:
        cosine = (vectors[name] * single).sum(axis=1)
        arms[name] = {"texts_per_s": round(statistics.median(rates[name]), 2),
                      "per_round": [round(r, 2) for r in rates[name]],
                      "min_cosine_to_one_at_a_time": float(round(cosine.min(), 8))}
    base = arms["one at a time"]["texts_per_s"]
    best = max((n for n in arms if n != "one at a time"), key=lambda n: arms[n]["texts_per_s"])
    report = {
        "benchmark": "nace-uksic", "subset": ["10", "11"], "protocol": "P: embedding throughput",
        "command": command, "created": now(), "machine": machine(),
        "model": {"file": default_model_path().name, "sha256": DEFAULT_MODEL_SHA256},
        "settings": {"texts": len(texts), "threads": args.threads, "rounds": args.rounds,
                     "batched": "llama-cpp-python Llama.embed: one sequence id per text, as many texts per "
                                "llama_decode as fit in the batch's tokens, mean pooling per sequence"},
        "perf": {"one_at_a_time_texts_per_s": base, "best_batch": best,
                 "best_texts_per_s": arms[best]["texts_per_s"],
                 "speedup": round(arms[best]["texts_per_s"] / base, 3) if base else None,
                 "min_cosine": min(a["min_cosine_to_one_at_a_time"] for a in arms.values())},
        "arms": arms,
    }
    lines = ["# Embedding throughput: one text per llama_decode against many", "", f"Command: `{command}`", "",
             f"{len(texts)} UK SIC index texts of NACE 10-11, shipped MiniLM (`{default_model_path().name}`), "
             f"{args.threads} thread(s), {args.rounds} alternating rounds (median). Machine: {report['machine']['note']}.",
             "", "| arm | texts/s (median) | per round | min cosine to one at a time |", "|---|---|---|---|"]
    lines += [f"| {n} | {a['texts_per_s']} | {a['per_round']} | {a['min_cosine_to_one_at_a_time']} |"
              for n, a in arms.items()]
    lines += ["", f"Best batched arm: {best}, {report['perf']['speedup']} x one at a time.", ""]
    write_result(NAME, report, "\n".join(lines))
    print(report["perf"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
