"""Anchor arms of Protocol Q: MiniLM semantic search and logistic regression over note lines (and real+notes).

    PYTHONPATH=. python bench/anchors.py --subset 10,11      # -> bench/results/anchors-nace-10-11.json/.md
    PYTHONPATH=. python bench/anchors.py                     # -> bench/results/anchors-nace-full.json/.md

The project file under bench/work/ keeps the embedding cache, so reruns do not re-embed. C and the
temperatures are chosen on the validation carve of real-train (engine.coders.data), never on the test half.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.classification import import_builtin  # noqa: E402
from engine.coders.registry import get_model, load_coder  # noqa: E402
from engine.assist.coding import suggest  # noqa: E402
from engine.coders.embedding.cache import embed_cached  # noqa: E402
from engine.coders.embedding.coder import EmbeddingCoder  # noqa: E402
from engine.coders.embedding.model import load_embedding_model  # noqa: E402
from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding  # noqa: E402
from engine.coders.ensemble import choose_weight, combine  # noqa: E402
from engine.evaluate.metrics import Hierarchy, compute_metrics  # noqa: E402
from engine.store.project import Project  # noqa: E402
from engine.realdata.importing import import_preset  # noqa: E402
from engine.coders.data import DataMix, build_training_data  # noqa: E402
from engine.coders.fasttext.training import TrainOptions, train_fasttext  # noqa: E402
from engine.classification import leaf_codes_under  # noqa: E402

# (arm, coder, data mix, embedding mode); the anchors use the notes alone.
ARMS = [
    ("anchor-knn", "embedding-knn", dict(notes=1), "knn"),
    ("anchor-lr", "embedding-lr", dict(notes=1), "lr"),
    ("real+notes", "embedding-lr", dict(notes=1, real=1), "lr"),
    ("real+notes", "embedding-knn", dict(notes=1, real=1), "knn"),
]
REFERENCE = {  # BENCHMARK.md, "Measured baselines" (top-1, top-5)
    "10-11": {"anchor-knn/embedding-knn": (0.665, 0.906), "anchor-lr/embedding-lr": (0.728, 0.916),
              "real+notes/embedding-lr": (0.751, None)},
    "full": {"anchor-knn/embedding-knn": (0.519, 0.776), "anchor-lr/embedding-lr": (0.514, 0.777),
             "real+notes/embedding-lr": (0.673, 0.893), "real+notes/embedding-knn": (0.595, 0.870),
             "real+notes/fasttext": (0.624, 0.834)},
}


def open_bench_project(work: Path) -> Project:
    path = work / "nace-uksic.statcoder"
    if path.exists():
        return Project.open(path)
    with Project.create(path) as project:
        import_builtin(project, "nace2")
        import_preset(project, "uksic-index")
    return Project.open(path)


def arm_metrics(gold, preds, hierarchy, n_train: int) -> dict:
    result = compute_metrics(gold, preds, hierarchy)
    return {"top1": round(result.top1, 4), "top5": round(result.top5, 4), "macro_f1": round(result.macro_f1, 4),
            "per_level": {k: round(v, 4) for k, v in result.per_level.items()}, "n_train": n_train,
            "n_test": len(gold), "generation_s": 0, "ece": round(result.ece, 4)}


def latency(project: Project, model_id: int, texts: list[str]) -> dict:
    suggest(project, texts[0], 5, model=model_id)
    times = []
    for text in texts:
        start = time.perf_counter()
        suggest(project, text, 5, model=model_id)
        times.append((time.perf_counter() - start) * 1000)
    return {"suggest_p50_ms": round(float(np.percentile(times, 50)), 2),
            "suggest_p95_ms": round(float(np.percentile(times, 95)), 2), "suggest_n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", help="comma-separated NACE divisions, e.g. 10,11; default: all classes")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-fasttext", action="store_true", help="skip the fastText and ensemble real+notes arms")
    parser.add_argument("--latency-texts", type=int, default=1000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    project = open_bench_project(args.work)
    subset = args.subset.split(",") if args.subset else None
    codes = leaf_codes_under(project, subset) if subset else None
    tag = "-".join(subset) if subset else "full"
    hierarchy = Hierarchy.from_project(project)
    where = f" AND code IN ({','.join('?' * len(codes))})" if codes else ""
    test = project.conn.execute(f"SELECT text, code FROM real_texts WHERE split = 'test'{where} ORDER BY id",
                                codes or []).fetchall()
    gold = [c for _, c in test]
    embedder = load_embedding_model()
    fresh = [f"{t} (timing probe)" for t, _ in test[:300]]
    start = time.perf_counter()
    embedder.embed(fresh)
    texts_per_s = len(fresh) / (time.perf_counter() - start)
    start = time.perf_counter()
    test_x = embed_cached(project, embedder, [t for t, _ in test])
    test_embed_s = time.perf_counter() - start

    arms: dict = {}
    models: dict[str, int] = {}
    for arm, coder_name, weights, mode in ARMS:
        mix = DataMix(codes=codes, **weights)
        started = time.perf_counter()
        # The anchors are BENCHMARK.md's plain semantic search: no code centroids (the product kNN's default).
        result = train_embedding(project, mix, EmbeddingTrainOptions(mode=mode, name=f"bench {arm} {coder_name}",
                                                                     prototypes={}))
        cache = result.composition["cache"]
        preds = EmbeddingCoder.load(result.path).predict_vectors(test_x, 5)
        entry = arm_metrics(gold, preds, hierarchy, result.composition["train_lines"])
        entry.update(coder=coder_name, model_sha256=result.sha256, train_s=round(time.perf_counter() - started, 2),
                     cache=cache, validation=result.validation,
                     fit={k: v for k, v in result.params["fit"].items() if k != "c_grid"})
        arms[f"{arm}/{coder_name}"] = entry
        models[f"{arm}/{coder_name}"] = result.model_id
        print(f"{arm:12s} {coder_name:14s} top1 {entry['top1']:.3f} top5 {entry['top5']:.3f} "
              f"({entry['train_s']} s, cache hits {cache['hits']}/{cache['texts']})", flush=True)

    if not args.no_fasttext:
        mix = DataMix(codes=codes, notes=1, real=1)
        data = build_training_data(project, mix)
        ft = train_fasttext(project, mix, TrainOptions(name="bench real+notes fasttext", make_default=False))
        ft_coder, _ = load_coder(project, ft.model_id)
        ft_test = [dict(p) for p in ft_coder.predict_many([t for t, _ in test], len(ft_coder.codes))]
        ft_preds = [sorted(d.items(), key=lambda kv: -kv[1])[:5] for d in ft_test]
        entry = arm_metrics(gold, ft_preds, hierarchy, data.composition["train_lines"])
        entry.update(coder="fasttext", model_sha256=ft.sha256, train_s=round(ft.train_s, 2), validation=ft.validation)
        arms["real+notes/fasttext"] = entry
        # Ensemble of the two real+notes coders, weight chosen on the validation carve.
        emb_coder, _ = load_coder(project, models["real+notes/embedding-lr"])
        val_texts, val_gold = [t for t, _ in data.validation], [c for _, c in data.validation]
        val_x = embed_cached(project, embedder, val_texts)
        ft_val = [dict(p) for p in ft_coder.predict_many(val_texts, len(ft_coder.codes))]
        emb_val = [dict(p) for p in emb_coder.predict_vectors(val_x, len(emb_coder.codes))]
        weight, tried = choose_weight([ft_val, emb_val], val_gold)
        emb_test = [dict(p) for p in emb_coder.predict_vectors(test_x, len(emb_coder.codes))]
        preds = [combine([f, e], [weight, 1 - weight], 5) for f, e in zip(ft_test, emb_test)]
        entry = arm_metrics(gold, preds, hierarchy, data.composition["train_lines"])
        entry.update(coder="ensemble", weights={"fasttext": weight, "embedding-lr": round(1 - weight, 2)},
                     weight_grid=tried)
        arms["real+notes/ensemble"] = entry
        for name in ("real+notes/fasttext", "real+notes/ensemble"):
            print(f"{name:27s} top1 {arms[name]['top1']:.3f} top5 {arms[name]['top5']:.3f}", flush=True)

    probe = [t for t, _ in test[:: max(1, len(test) // args.latency_texts)]][: args.latency_texts]
    perf = {"embed_texts_per_s": round(texts_per_s, 1), "test_embed_s": round(test_embed_s, 2),
            **latency(project, models["anchor-lr/embedding-lr"], probe),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    reference = REFERENCE.get("10-11" if tag == "10-11" else "full", {})
    report = {
        "benchmark": "nace-uksic", "subset": subset, "command": "PYTHONPATH=. python " + shlex.join(["bench/anchors.py", *sys.argv[1:]]),
        "model": {"name": embedder.name, "sha256": embedder.sha256, "file": Path(embedder.path).name},
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "split": "test half of the UK SIC index (hash of the normalised text); C and temperature chosen on the "
                 "validation carve of real-train",
        "arms": arms, "perf": perf,
        "reference": {k: {"top1": v[0], "top5": v[1]} for k, v in reference.items()},
    }
    name = f"anchors-nace-{tag}"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Anchors, NACE {'divisions ' + ', '.join(subset) if subset else 'all classes'} (UK SIC index, test half)",
             "", f"`{report['command']}`", "",
             "| arm | coder | top-1 | top-5 | macro-F1 | BENCHMARK.md top-1 / top-5 | n_train | n_test |",
             "|---|---|---|---|---|---|---|---|"]
    for key, entry in arms.items():
        arm, coder = key.split("/")
        ref = reference.get(key)
        ref_text = (f"{ref[0]:.1%} / {ref[1]:.1%}" if ref and ref[1] else f"{ref[0]:.1%} / -" if ref else "-")
        lines.append(f"| {arm} | {coder} | {entry['top1']:.1%} | {entry['top5']:.1%} | {entry['macro_f1']:.3f} | "
                     f"{ref_text} | {entry['n_train']} | {entry['n_test']} |")
    lines += ["", f"Embedding: {perf['embed_texts_per_s']} texts/s (one text per call); suggest with the anchor-lr "
              f"coder, embedding included: p50 {perf['suggest_p50_ms']} ms, p95 {perf['suggest_p95_ms']} ms over "
              f"{perf['suggest_n']} test phrases; peak RSS {perf['peak_rss_mb']} MB.", ""]
    (args.out / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out / name}.json and .md")


if __name__ == "__main__":
    main()
