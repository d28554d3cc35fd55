"""The generation-side methods (ProGen, SynthesizRR, FuseGen with a second LLM) on the development set, small.

New LLM runs on a shared 2-core CPU are slow, so these runs are small (a few samples per code) and the
figures are indicative only. SynthesizRR retrieves real texts near each code's notes; so that retrieval
never shows the generator a development text, the real-train half is split by a hash: one half becomes
the project's uncoded texts (the retrieval pool, codes dropped), the other half stays real-train and is
the development set every arm here is scored on. The test half is never read.

    python -m bench.methods_gen_dev prepare --project bench/projects/nace-10-11.statcoder \\
        --work bench/work/gen-methods-1011.statcoder --qwen PATH.gguf --gemma PATH.gguf --quota 4
    python -m engine generate run -p bench/work/gen-methods-1011.statcoder RUN   # for each run it prints
    python -m bench.methods_gen_dev score --work bench/work/gen-methods-1011.statcoder --progen-run 3 \\
        --retrieved-run 4 --gemma-run 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from engine.classification import leaf_codes_under
from engine.classification.note_lines import notes_pairs
from engine.coders.embedding.cache import embed_cached
from engine.coders.embedding.model import load_embedding_model
from engine.coders.embedding.retrieval import style_examples
from engine.curate.feedback import helpful_samples
from engine.curate.methods import model_disagreement
from engine.curate.rules import make_sample
from engine.generate import GenerationParams, create_run
from engine.llm.backends import BackendSettings, HardwareSettings
from engine.realdata.importing import real_texts
from engine.store.project import Project

from .common import command_line, now, write_result
from .methods_dev import _top1_embedding, _top1_fasttext


def in_pool(text_key: str) -> bool:
    """Half of real-train, by a salted hash: the retrieval pool (the other half is the dev set)."""
    return int(hashlib.sha256(b"pool:" + text_key.encode("utf-8")).hexdigest()[:8], 16) % 2 == 0


def prepare(args) -> None:
    work = Path(args.work)
    work.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.project, work)
    with Project.open(work) as project:
        codes = leaf_codes_under(project, args.subset.split(","))
        rows = project.conn.execute("SELECT id, text, text_key FROM real_texts WHERE split = 'train'").fetchall()
        pool = [(i, t, k) for i, t, k in rows if in_pool(k)]
        with project.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO uncoded_texts (text, text_key) VALUES (?, ?)",
                             [(t, k) for _, t, k in pool])
            conn.executemany("DELETE FROM real_texts WHERE id = ?", [(i,) for i, _, _ in pool])
        hardware = HardwareSettings(threads=1, n_ctx=2048)
        base = dict(per_request=4, examples_k=4)
        progen = helpful_samples(project, run_ids=[args.round1], codes=codes, top=12)
        retrieved = style_examples(project, codes=codes, top=12, sources=["uncoded"])
        runs = {
            "progen": create_run(project, codes=codes, quota=args.quota, seed=11, model=args.qwen,
                                 backend=BackendSettings(model_path=args.qwen, hardware=hardware),
                                 strategies=["progen"], params=GenerationParams(**base, examples={"progen": progen}),
                                 name=f"ProGen round 2 from run {args.round1}"),
            "retrieved": create_run(project, codes=codes, quota=args.quota, seed=12, model=args.qwen,
                                    backend=BackendSettings(model_path=args.qwen, hardware=hardware),
                                    strategies=["retrieved"],
                                    params=GenerationParams(**base, examples={"retrieved": retrieved}),
                                    name="SynthesizRR, uncoded pool"),
            "gemma": create_run(project, codes=codes, quota=args.gemma_quota, seed=13, model=args.gemma,
                                backend=BackendSettings(model_path=args.gemma, hardware=hardware),
                                strategies=["grid", "notes"], params=GenerationParams(per_request=4),
                                name="Gemma 3 270M, grid + notes (FuseGen's second model)"),
        }
    print(json.dumps({"work": str(work), "pool": len(pool), "dev": len(rows) - len(pool), "runs": runs}))


def score(args) -> None:
    with Project.open(args.work) as project:
        codes = leaf_codes_under(project, args.subset.split(","))
        notes = list(notes_pairs(project, codes))
        dev = real_texts(project, "train", codes)
        samples = project.conn.execute("SELECT id, run_id, text, code, model_sha256 FROM samples ORDER BY id").fetchall()
        embedder = load_embedding_model(None)
        texts = list(dict.fromkeys([s[2] for s in samples] + [t for t, _ in notes] + [t for t, _ in dev]))
        vec = dict(zip(texts, embed_cached(project, embedder, texts)))
    by_run: dict[int, list[tuple[int, str, str, str]]] = defaultdict(list)
    for sid, run, text, code, model in samples:
        by_run[run].append((sid, text, code, model))

    def pairs(run, per_code=None):
        seen: dict[str, int] = defaultdict(int)
        out = []
        for _, text, code, _ in by_run[run]:
            if per_code is None or seen[code] < per_code:
                seen[code] += 1
                out.append((text, code))
        return out

    base = pairs(1) + pairs(2)
    qwen_and_gemma = by_run[1] + by_run[2] + by_run[args.gemma_run]
    hits = model_disagreement([make_sample(s, c, t) for s, t, c, _ in qwen_and_gemma],
                              {s: m for s, _, _, m in qwen_and_gemma}, notes, top_k=args.fusegen_top_k)
    dropped = {h.sample_id for h in hits}
    qwen_ids = {s for s, *_ in by_run[1] + by_run[2]}
    arms = [
        ("runs 1+2 (Qwen, 48/code)", base),
        ("run 2 grid, first 4/code (same-size control)", pairs(2, args.quota)),
        (f"ProGen run {args.progen_run} ({args.quota}/code)", pairs(args.progen_run)),
        (f"SynthesizRR run {args.retrieved_run} ({args.quota}/code)", pairs(args.retrieved_run)),
        (f"runs 1+2 + ProGen", base + pairs(args.progen_run)),
        (f"runs 1+2 + SynthesizRR", base + pairs(args.retrieved_run)),
        (f"runs 1+2 + control grid 4/code repeated", base + pairs(2, args.quota)),
        (f"Gemma run {args.gemma_run} alone", pairs(args.gemma_run)),
        ("runs 1+2 + Gemma, no selection", [(t, c) for _, t, c, _ in qwen_and_gemma]),
        (f"runs 1+2 + Gemma, FuseGen top-{args.fusegen_top_k} agreement",
         [(t, c) for s, t, c, _ in qwen_and_gemma if s not in dropped]),
        (f"runs 1+2, FuseGen-filtered by Gemma's coder",
         [(t, c) for s, t, c, _ in qwen_and_gemma if s in qwen_ids and s not in dropped]),
    ]
    siblings: dict[str, list[str]] = {}
    table = []
    for name, synthetic in arms:
        train = notes + synthetic
        row = {"arm": name, "synthetic": len(synthetic),
               "fasttext_dev_top1": round(_top1_fasttext(train, dev, siblings, 0.0), 4),
               "embedding_dev_top1": round(_top1_embedding(train, dev, vec.__getitem__, siblings, 0.0), 4)}
        table.append(row)
        print(f"{row['fasttext_dev_top1']:.3f}  {row['embedding_dev_top1']:.3f}  {len(synthetic):5d}  {name}", flush=True)
    command = command_line("bench.methods_gen_dev", argv_of(args))
    payload = {"benchmark": "nace-uksic", "subset": args.subset.split(","), "command": command, "created": now(),
               "evaluated_on": "the non-pool hash half of real-train (development set; the test half is not read)",
               "n_dev": len(dev), "n_notes": len(notes), "runs": {"progen": args.progen_run,
                                                                  "retrieved": args.retrieved_run,
                                                                  "gemma": args.gemma_run},
               "fusegen_dropped": len(dropped), "rows": table}
    lines = ["# Generation-side methods on the development set (NACE 10-11, small runs)", "", f"`{command}`", "",
             f"Zero-real coders scored on {len(dev)} real-train texts (the half not used as SynthesizRR's retrieval "
             f"pool); the test half is not read. Runs of {args.quota} samples per code: indicative only.", "",
             "| training data (+ notes) | synthetic | fastText dev top-1 | embedding dev top-1 |", "|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['synthetic']} | {100 * r['fasttext_dev_top1']:.1f} % | "
              f"{100 * r['embedding_dev_top1']:.1f} % |" for r in table]
    write_result(args.name, payload, "\n".join(lines) + "\n")


def diversity(args) -> None:
    """Diversity control: per-code diversity (the dataset-quality metrics) and dev top-1, run against run."""
    from engine.curate.quality import text_stats

    with Project.open(args.work) as project:
        codes = leaf_codes_under(project, args.subset.split(","))
        notes = list(notes_pairs(project, codes))
        dev = real_texts(project, "train", codes)
        runs = {}
        for run in args.runs:
            name, params = project.conn.execute("SELECT name, params FROM generation_runs WHERE id = ?",
                                                (run,)).fetchone()
            rows = project.conn.execute("SELECT text, code, condition FROM samples WHERE run_id = ? ORDER BY id",
                                        (run,)).fetchall()
            runs[run] = (name, json.loads(params)["generation"], rows)
        base = project.conn.execute("SELECT text, code FROM samples WHERE run_id IN (1, 2) ORDER BY id").fetchall()
        embedder = load_embedding_model(None)
        texts = list(dict.fromkeys([t for r in runs.values() for t, _, _ in r[2]] + [t for t, _ in notes]
                                   + [t for t, _ in dev] + [t for t, _ in base]))
        vec = dict(zip(texts, embed_cached(project, embedder, texts)))
    table = []
    for run, (name, params, rows) in runs.items():
        per_code = defaultdict(list)
        for text, code, _ in rows:
            per_code[code].append(text)
        stats = [text_stats(t) for t in per_code.values()]
        pairs = [(t, c) for t, c, _ in rows]
        row = {"run": run, "name": name, "suppress_penalty": params.get("suppress_penalty", 0.0),
               "samples": len(rows), "suppressed_samples": sum("suppressed" in (c or "") for _, _, c in rows),
               "distinct_1_per_code": round(float(np.mean([x.distinct_1 for x in stats])), 4),
               "distinct_2_per_code": round(float(np.mean([x.distinct_2 for x in stats])), 4),
               "self_similarity_per_code": round(float(np.mean([x.self_similarity for x in stats
                                                                if x.self_similarity is not None])), 4),
               "fasttext_dev_top1": round(_top1_fasttext(notes + pairs, dev, {}, 0.0), 4),
               "embedding_dev_top1": round(_top1_embedding(notes + pairs, dev, vec.__getitem__, {}, 0.0), 4),
               "fasttext_dev_top1_with_runs_1_2": round(_top1_fasttext(notes + base + pairs, dev, {}, 0.0), 4)}
        table.append(row)
        print(json.dumps(row), flush=True)
    command = command_line("bench.methods_gen_dev", _ARGV)
    payload = {"benchmark": "nace-uksic", "subset": args.subset.split(","), "command": command, "created": now(),
               "evaluated_on": "the non-pool hash half of real-train (development set; the test half is not read)",
               "n_dev": len(dev), "rows": table}
    lines = ["# Diversity control on the development set (NACE 10-11, Gemma 3 270M, small runs)", "", f"`{command}`", "",
             f"Per-code diversity of each run's samples (the dataset-quality metrics: distinct-1/2, mean pairwise "
             f"similarity), and zero-real top-1 on {len(dev)} real-train texts (notes + the run; and notes + Qwen "
             "runs 1+2 + the run). The test half is not read.", "",
             "| run | suppress | samples (under suppression) | distinct-1 | distinct-2 | self-sim | fastText dev | "
             "embeddings dev | fastText dev, + runs 1+2 |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} {r['name']} | {r['suppress_penalty']} | {r['samples']} ({r['suppressed_samples']}) | "
              f"{r['distinct_1_per_code']:.3f} | {r['distinct_2_per_code']:.3f} | {r['self_similarity_per_code']:.3f} | "
              f"{100 * r['fasttext_dev_top1']:.1f} % | {100 * r['embedding_dev_top1']:.1f} % | "
              f"{100 * r['fasttext_dev_top1_with_runs_1_2']:.1f} % |" for r in table]
    write_result(args.name, payload, "\n".join(lines) + "\n")


_ARGV: list[str] | None = None


def argv_of(args) -> list[str] | None:
    return _ARGV


def main(argv=None) -> None:
    global _ARGV
    _ARGV = argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--project", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--subset", default="10,11")
    p.add_argument("--round1", type=int, default=1)
    p.add_argument("--qwen", required=True)
    p.add_argument("--gemma", required=True)
    p.add_argument("--quota", type=int, default=4)
    p.add_argument("--gemma-quota", type=int, default=8)
    s = sub.add_parser("score")
    s.add_argument("--work", required=True)
    s.add_argument("--subset", default="10,11")
    s.add_argument("--progen-run", type=int, required=True)
    s.add_argument("--retrieved-run", type=int, required=True)
    s.add_argument("--gemma-run", type=int, required=True)
    s.add_argument("--quota", type=int, default=4)
    s.add_argument("--fusegen-top-k", type=int, default=3)
    s.add_argument("--name", default="methods-gen-dev-nace-10-11")
    d = sub.add_parser("diversity")
    d.add_argument("--work", required=True)
    d.add_argument("--subset", default="10,11")
    d.add_argument("--run", dest="runs", type=int, action="append", required=True)
    d.add_argument("--name", default="methods-diversity-dev-nace-10-11")
    args = parser.parse_args(argv)
    {"prepare": prepare, "score": score, "diversity": diversity}[args.command](args)


if __name__ == "__main__":
    main()
