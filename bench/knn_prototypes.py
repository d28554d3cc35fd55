"""kNN prototypes on all of NACE, zero real: the nearest note line plus the cosine to each code's centroids.

    PYTHONPATH=. python -m bench.knn_prototypes dev     # the grid on the real-train half (development set)
    PYTHONPATH=. python -m bench.knn_prototypes test    # the setting chosen on dev, scored on the test half once

The coders are trained through the product's path (engine.coders.embedding.training, mode knn) on the notes
and the synthetic samples of bench/projects/nace-full-24.statcoder (runs 1-5, 24 per class, uncurated), in a
copy under bench/work/. No real text trains them; their temperature is fitted on a carve of their own
training lines. `dev` scores every setting of the grid on the whole real-train half and chooses by top-1;
`test` reads the test half once for the chosen setting and for the notes-only nearest neighbour it replaces.
Results: bench/results/knn-prototypes-dev-nace-full.{json,md} and knn-prototypes-test-nace-full.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import command_line, load_result, machine, now, work_copy, write_result  # noqa: E402
from engine.coders.data import DataMix  # noqa: E402
from engine.coders.embedding.cache import embed_cached  # noqa: E402
from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding  # noqa: E402
from engine.coders.registry import load_coder  # noqa: E402
from engine.store.project import Project  # noqa: E402

SOURCE = ROOT / "bench" / "projects" / "nace-full-24.statcoder"
WORK = ROOT / "bench" / "work" / "knn-prototypes-nace-full.statcoder"
RUNS = [1, 2, 3, 4, 5]
DEV, TEST = "knn-prototypes-dev-nace-full", "knn-prototypes-test-nace-full"

# name -> (synthetic in the mix, prototype weights, sources that count only through their centroid)
SETTINGS: dict[str, tuple[bool, dict[str, float], tuple[str, ...]]] = {
    "notes: nearest note line (anchor-knn)": (False, {}, ()),
    "notes + synthetic as nearest references (before)": (True, {}, ()),
}
for _n in (0.0, 0.25, 0.5):
    for _s in (0.0, 0.25, 0.5):
        if _n or _s:
            SETTINGS[f"nearest note line + {_n:g} notes centroid + {_s:g} synthetic centroid"] = (
                bool(_s), {"notes": _n, "synthetic": _s}, ("synthetic",))


def open_work() -> Project:
    return work_copy(SOURCE, WORK)


def coder_for(project: Project, name: str):
    """The kNN coder of a setting, trained once per work project (its model name marks it)."""
    synthetic, weights, only = SETTINGS[name]
    label = f"bench knn prototypes: {name}"
    row = project.conn.execute("SELECT id FROM models WHERE name = ? ORDER BY id DESC", (label,)).fetchone()
    if row is None:
        mix = DataMix(notes=1, synthetic=int(synthetic), run_ids=RUNS if synthetic else None, validation_share=0.1,
                      validation_from="training")
        model_id = train_embedding(project, mix, EmbeddingTrainOptions(
            mode="knn", name=label, make_default=False, prototypes=weights, prototype_only=only)).model_id
    else:
        model_id = row[0]
    return load_coder(project, model_id)


def score(project: Project, coder, rows) -> dict:
    vectors = embed_cached(project, coder.embedder, [t for t, _ in rows])
    preds = coder.predict_vectors(vectors, 5)
    n = max(1, len(rows))
    return {"top1": round(sum(p[0][0] == c for p, (_, c) in zip(preds, rows)) / n, 4),
            "top5": round(sum(c in [k for k, _ in p] for p, (_, c) in zip(preds, rows)) / n, 4), "n": len(rows)}


def split_rows(project: Project, split: str) -> list[tuple[str, str]]:
    return project.conn.execute("SELECT text, code FROM real_texts WHERE split = ? ORDER BY id", (split,)).fetchall()


def header(kind: str, result: dict) -> list[str]:
    return [f"# kNN prototypes, all of NACE (UK SIC index), zero real: {kind}", "",
            "Command: `" + result["command"] + "`", "",
            f"Created {result['created']}. {result['machine']['note']}.", "",
            "Coders: embedding kNN (MiniLM) trained on the NACE notes (and, where said, the 14,760 synthetic samples of "
            "runs 1-5 in `bench/projects/nace-full-24.statcoder`, uncurated). A code's score is the cosine of its "
            "nearest reference plus weight x the cosine to each of its centroids. No real text trains or calibrates "
            "them.", ""]


def cmd_dev() -> dict:
    project = open_work()
    rows = split_rows(project, "train")
    out = {}
    for name in SETTINGS:
        coder, record = coder_for(project, name)
        out[name] = {**score(project, coder, rows), "model_sha256": record.sha256}
        print(f"[{now()}] {name}: {out[name]['top1']:.3f}", file=sys.stderr, flush=True)
    chosen = max(out, key=lambda k: (out[k]["top1"], out[k]["top5"]))
    return {"dev": out, "chosen": chosen}


def cmd_test(dev: dict) -> dict:
    project = open_work()
    rows = split_rows(project, "test")
    baseline = "notes: nearest note line (anchor-knn)"
    out = {}
    for name in dict.fromkeys([baseline, dev["chosen"]]):
        coder, record = coder_for(project, name)
        start = time.perf_counter()
        out[name] = {**score(project, coder, rows), "model_sha256": record.sha256,
                     "seconds": round(time.perf_counter() - start, 1)}
    return {"test": out, "chosen": dev["chosen"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.knn_prototypes", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["dev", "test"])
    args = parser.parse_args(argv)
    base = {"command": command_line("bench.knn_prototypes", argv), "created": now(), "machine": machine()}
    if args.step == "dev":
        result = {**base, **cmd_dev()}
        lines = header("development set (the real-train half, 7,887 texts)", result) + [
            "| setting | top-1 | top-5 |", "|---|---|---|"]
        lines += [f"| {k} | {v['top1']:.1%} | {v['top5']:.1%} |" for k, v in result["dev"].items()]
        lines += ["", f"Chosen: {result['chosen']}.", ""]
        write_result(DEV, result, "\n".join(lines))
        return 0
    dev = load_result(DEV)
    if dev is None:
        raise SystemExit("run the dev step first")
    result = {**base, **cmd_test(dev)}
    lines = header("test half, read once", result) + ["| setting | top-1 | top-5 | n |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['top1']:.1%} | {v['top5']:.1%} | {v['n']:,} |" for k, v in result["test"].items()]
    lines += ["", f"The setting was chosen on the development set: {result['chosen']}.", ""]
    write_result(TEST, result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
