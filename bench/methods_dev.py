"""The published synthetic-data methods (SuperGen, SunGen, hierarchy-aware training, FuseGen) on the development set.

Zero-real coders (notes + synthetic samples, no real text) are trained per arm and scored on the real-train
half, which a zero-real coder never trains on; the test half is read only with `--test-arms`, for the
arms named there, after they were chosen on the development set (BENCHMARK.md).

Each method runs alone (on every sample) and on top of the current default (the samples the default
curation accepts, with its relabelling). Two coders: fastText (the bench's settings, one thread:
deterministic) and the embedding coder (MiniLM + logistic regression, C = 100, BENCHMARK.md's setting:
no validation carve, so every arm trains on the same texts). Works on a copy of the project file.

    python -m bench.methods_dev --project bench/projects/nace-10-11.statcoder --run-id 1 --run-id 2 --subset 10,11
    python -m bench.methods_dev --project bench/projects/nace-full.statcoder --run-id 1 --run-id 2 --run-id 3 \\
        --run-id 4 --name methods-dev-nace-full
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from engine.classification import leaf_codes_under
from engine.classification.note_lines import notes_pairs
from engine.coders.embedding.cache import embed_cached
from engine.coders.embedding.classifier import fit_logistic
from engine.coders.embedding.model import load_embedding_model
from engine.coders.fasttext.model import FastTextCoder
from engine.coders.hierarchy import fasttext_labels, sibling_map, soft_target_matrix
from engine.curate.methods import lowest_share, model_disagreement, sungen_scores, supergen_scores
from engine.curate.rules import make_sample
from engine.curate.store import CurationOptions, curate
from engine.realdata.importing import real_texts
from engine.store.project import Project

from .common import command_line, now, write_result
from .curation_dev import PARAMS

EMBEDDING_C = 100.0


@dataclasses.dataclass
class Arm:
    name: str
    method: str                         # none | default | supergen | sungen | hierarchy | fusegen | combination
    base: str                           # "all samples" or "default curation"
    pairs: list[tuple[str, str]]        # the synthetic (text, label) pairs it trains on (notes are added)
    smoothing: float = 0.0


def _fit_fasttext(pairs, siblings, smoothing):
    labels_of = (lambda code: fasttext_labels(code, siblings, smoothing)) if smoothing > 0 else None
    coder = FastTextCoder.train(pairs, PARAMS, labels_of=labels_of)

    def top1(evalset) -> float:
        predictions = coder.predict_many([t for t, _ in evalset], k=1)
        return sum(bool(p) and p[0][0] == c for p, (_, c) in zip(predictions, evalset)) / len(evalset)
    return top1


def _fit_embedding(pairs, vector_of: Callable[[str], np.ndarray], siblings, smoothing):
    classes = sorted({c for _, c in pairs})
    index = {c: i for i, c in enumerate(classes)}
    x = np.stack([vector_of(t) for t, _ in pairs])
    y = np.array([index[c] for _, c in pairs], dtype=np.int64)
    soft = soft_target_matrix([c for _, c in pairs], classes, siblings, smoothing) if smoothing > 0 else None
    linear = fit_logistic(x, y, len(classes), c=EMBEDDING_C, max_iter=300, soft=soft)

    def top1(evalset) -> float:
        dx = np.stack([vector_of(t) for t, _ in evalset])
        pred = (dx @ linear.weights + linear.bias).argmax(axis=1)
        return float(np.mean([classes[p] == c for p, (_, c) in zip(pred, evalset)]))
    return top1


def _top1_fasttext(pairs, dev, siblings, smoothing) -> float:
    return _fit_fasttext(pairs, siblings, smoothing)(dev)


def _top1_embedding(pairs, dev, vector_of: Callable[[str], np.ndarray], siblings, smoothing) -> float:
    return _fit_embedding(pairs, vector_of, siblings, smoothing)(dev)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--run-id", type=int, action="append", required=True)
    parser.add_argument("--subset", default="", help="Top codes, e.g. 10,11 (default: every leaf code).")
    parser.add_argument("--name", default="methods-dev-nace-10-11")
    parser.add_argument("--coders", default="fasttext,embedding")
    parser.add_argument("--shares", default="0.25,0.5", help="Shares SuperGen and SunGen drop per code.")
    parser.add_argument("--smoothing", default="0.1,0.2", help="Hierarchy smoothing values.")
    parser.add_argument("--fusegen-top-k", type=int, default=3)
    parser.add_argument("--supergen-per", choices=("sample", "unit"), default="sample",
                        help="SuperGen's score: each sample's own (per phrase where the project holds per-phrase "
                        "logprobs, else per request), or 'unit': every sample of a request gets the request's "
                        "(its phrases' logprobs summed over their tokens): a per-request control for per-phrase scores.")
    parser.add_argument("--combination", default="", help="Extra arm on top of the default: e.g. "
                        "'supergen=0.25,sungen=0.25,hierarchy=0.1' (chosen from the single-method arms).")
    parser.add_argument("--only", default="", help="Arm names to train, comma- or '|'-separated (default: all).")
    parser.add_argument("--no-dev", action="store_true", help="With --test-arms: skip the dev scores (they are in "
                        "the dev result file already), to save time.")
    parser.add_argument("--test-arms", default="", help="After choosing on dev: these arms (by name, '|'-separated) "
                        "are also scored on the test half, once.")
    args = parser.parse_args(argv)
    coders = [c.strip() for c in args.coders.split(",") if c.strip()]
    shares = [float(s) for s in args.shares.split(",") if s]
    smoothings = [float(s) for s in args.smoothing.split(",") if s]
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.statcoder"
        shutil.copy(args.project, path)
        with Project.open(path) as project:
            tops = [s for s in args.subset.split(",") if s]
            codes = leaf_codes_under(project, tops) if tops else [
                r[0] for r in project.conn.execute("SELECT code FROM codes WHERE is_leaf ORDER BY ord")]
            marks = ",".join("?" * len(args.run_id))
            rows = project.conn.execute(
                f"SELECT id, text, code, logprob, completion_tokens, model_sha256, logprob_tokens, run_id, unit"
                f" FROM samples"
                f" WHERE run_id IN ({marks}) ORDER BY id", args.run_id).fetchall()
            notes = list(notes_pairs(project, codes))
            dev = real_texts(project, "train", codes)
            test_names = [n for n in args.test_arms.split("|") if n]
            test = real_texts(project, "test", codes) if test_names else []
            # The product's default curation for a zero-real coder: no real text anywhere (use_real_train off).
            t0 = time.time()
            result = curate(project, run_ids=args.run_id, options=CurationOptions(use_real_train=False,
                                                                                   label_check="auto"))
            curation_s = time.time() - t0
            default = {sid: label for sid, label in project.conn.execute(
                f"SELECT id, COALESCE(curated_code, code) FROM samples WHERE run_id IN ({marks})"
                " AND status = 'accepted'", args.run_id)}
            siblings = sibling_map(project, codes)
            embedder = load_embedding_model(None)
            texts = list(dict.fromkeys([r[1] for r in rows] + [t for t, _ in notes] + [t for t, _ in dev]
                                       + [t for t, _ in test]))
            t0 = time.time()
            vectors = embed_cached(project, embedder, texts)
            embed_s = time.time() - t0
    vec = dict(zip(texts, vectors))
    text_of = {r[0]: r[1] for r in rows}
    own = {r[0]: r[2] for r in rows}
    bases = {"all samples": own, "default curation": default}
    logprob = supergen_scores([(r[0], r[3], r[4], r[6]) for r in rows])
    if args.supergen_per == "unit":
        totals: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0])
        for r in rows:
            if r[3] is not None and r[6]:
                totals[(r[7], r[8])][0] += r[3]
                totals[(r[7], r[8])][1] += r[6]
        logprob = {r[0]: totals[(r[7], r[8])][0] / totals[(r[7], r[8])][1] for r in rows
                   if totals.get((r[7], r[8]), [0, 0])[1]}
    arms: list[Arm] = [Arm("no curation", "none", "all samples", [(text_of[s], own[s]) for s in own]),
                       Arm("default curation", "default", "default curation",
                           [(text_of[s], default[s]) for s in sorted(default)])]
    for base_name, labels in bases.items():
        ids = sorted(labels)
        on = "" if base_name == "all samples" else " on default"
        for share in shares:
            dropped = set(lowest_share({s: logprob[s] for s in ids if s in logprob}, labels, share))
            arms.append(Arm(f"SuperGen drop {share:.0%}{on}", "supergen", base_name,
                            [(text_of[s], labels[s]) for s in ids if s not in dropped]))
        train_x = np.stack([vec[text_of[s]] for s in ids])
        scores = sungen_scores(train_x, [labels[s] for s in ids], np.stack([vec[t] for t, _ in notes]),
                               [c for _, c in notes])
        influence = dict(zip(ids, map(float, scores)))
        for share in shares:
            dropped = set(lowest_share(influence, labels, share))
            arms.append(Arm(f"SunGen drop {share:.0%}{on}", "sungen", base_name,
                            [(text_of[s], labels[s]) for s in ids if s not in dropped]))
        # SunGen's weights as repetition (fastText has no sample weights): lowest quarter out, highest twice.
        low = set(lowest_share(influence, labels, 0.25))
        high = set(lowest_share({s: -v for s, v in influence.items()}, labels, 0.25))
        arms.append(Arm(f"SunGen weights as repetition (drop 25 %, repeat top 25 %){on}", "sungen", base_name,
                        [(text_of[s], labels[s]) for s in ids if s not in low]
                        + [(text_of[s], labels[s]) for s in ids if s in high]))
        for eps in smoothings:
            arms.append(Arm(f"hierarchy smoothing {eps}{on}", "hierarchy", base_name,
                            [(text_of[s], labels[s]) for s in ids], smoothing=eps))
        models = {r[5] for r in rows}
        if len(models) > 1:
            samples = [make_sample(s, labels[s], text_of[s]) for s in ids]
            hits = model_disagreement(samples, {r[0]: r[5] for r in rows}, notes, top_k=args.fusegen_top_k)
            dropped = {h.sample_id for h in hits}
            arms.append(Arm(f"FuseGen top-{args.fusegen_top_k} agreement{on}", "fusegen", base_name,
                            [(text_of[s], labels[s]) for s in ids if s not in dropped]))
    if args.combination:
        parts = dict(p.split("=") for p in args.combination.split(","))
        labels = default
        ids = sorted(labels)
        keep = set(ids)
        if "supergen" in parts:
            keep -= set(lowest_share({s: logprob[s] for s in ids if s in logprob}, labels, float(parts["supergen"])))
        if "sungen" in parts:
            scores = sungen_scores(np.stack([vec[text_of[s]] for s in ids]), [labels[s] for s in ids],
                                   np.stack([vec[t] for t, _ in notes]), [c for _, c in notes])
            keep -= set(lowest_share(dict(zip(ids, map(float, scores))), labels, float(parts["sungen"])))
        arms.append(Arm(f"combination {args.combination} on default", "combination", "default curation",
                        [(text_of[s], labels[s]) for s in ids if s in keep],
                        smoothing=float(parts.get("hierarchy", 0.0))))
    # '|' separates names that contain commas (the combination arm's); plain commas otherwise
    only = {n.strip() for n in args.only.split("|" if "|" in args.only else ",") if n.strip()}
    table = []
    for arm in arms:
        if only and arm.name not in only:
            continue
        row = {"arm": arm.name, "method": arm.method, "base": arm.base, "synthetic": len(arm.pairs),
               "smoothing": arm.smoothing}
        pairs = notes + arm.pairs
        for coder in coders:
            t0 = time.time()
            if coder == "fasttext":
                top1 = _fit_fasttext(pairs, siblings, arm.smoothing)
            else:
                top1 = _fit_embedding(pairs, vec.__getitem__, siblings, arm.smoothing)
            if not args.no_dev:
                row[f"{coder}_dev_top1"] = round(top1(dev), 4)
            if arm.name in test_names:
                row[f"{coder}_test_top1"] = round(top1(test), 4)
            row[f"{coder}_s"] = round(time.time() - t0, 1)
        table.append(row)
        print("  ".join(f"{row.get(f'{c}_dev_top1', 0):.3f} {row.get(f'{c}_test_top1', 0):.3f}" for c in coders),
              f"{row['synthetic']:5d}", arm.name, flush=True)
    command = command_line("bench.methods_dev", argv)
    payload = {"benchmark": "nace-uksic", "subset": tops or "all", "command": command, "created": now(),
               "evaluated_on": "real-train half (development set)" + (
                   f"; test half read once for: {', '.join(test_names)}" if test_names else "; the test half is not read"),
               "run_ids": args.run_id, "supergen_per": args.supergen_per, "n_dev": len(dev), "n_test": len(test), "n_notes": len(notes),
               "samples": len(rows), "models": sorted({r[5] for r in rows}), "coders": coders,
               "fasttext_params": dataclasses.asdict(PARAMS), "embedding_c": EMBEDDING_C,
               "default_curation": result.to_dict(), "curation_s": round(curation_s, 1), "embed_s": round(embed_s, 1),
               "seconds": round(time.time() - started, 1), "rows": table}
    header = "| arm | synthetic | " + " | ".join(f"{c} dev top-1" for c in coders)
    header += "".join(f" | {c} test top-1" for c in coders) if test_names else ""
    lines = [f"# Synthetic-data methods on the development set ({'NACE ' + args.subset if tops else 'all of NACE'})",
             "", f"`{command}`", "",
             f"Zero-real coders (notes + synthetic, no real text), scored on {len(dev)} real-train texts"
             + (f"; the test half ({len(test)} texts) read once, for the arms chosen on dev." if test_names
                else "; the test half is not read.")
             + f" {len(rows)} samples from runs {args.run_id}; the default curation accepted {len(default)}.", "",
             header + " |", "|---|---|" + "---|" * (len(coders) * (2 if test_names else 1))]
    for r in table:
        cells = [f"{100 * r[f'{c}_dev_top1']:.1f} %" if f"{c}_dev_top1" in r else "" for c in coders]
        if test_names:
            cells += [f"{100 * r[f'{c}_test_top1']:.1f} %" if f"{c}_test_top1" in r else "" for c in coders]
        lines.append(f"| {r['arm']} | {r['synthetic']} | " + " | ".join(cells) + " |")
    write_result(args.name, payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
