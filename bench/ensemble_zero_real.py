"""The zero-real ensemble on all of NACE: the kNN prototypes coder times fastText and the embedding regression.

    PYTHONPATH=. python -m bench.ensemble_zero_real dev     # weights on the real-train half (development set)
    PYTHONPATH=. python -m bench.ensemble_zero_real test    # the weights chosen on dev, scored on the test half once
    PYTHONPATH=. python -m bench.ensemble_zero_real dev --lexical   # a fourth member: the lexical (BM25) coder
    PYTHONPATH=. python -m bench.ensemble_zero_real dev --lexical --grams 4   # its terms: words + 4-grams
    PYTHONPATH=. python -m bench.ensemble_zero_real dev --lexical --grams 4 --redirected   # + redirected notes
    PYTHONPATH=. python -m bench.ensemble_zero_real dev --lexical --grams 4 --redirected --coverage  # + coverage

The three members are trained through the product's path (engine.coders.train) on the notes and the synthetic
samples of bench/projects/nace-full-24.statcoder (runs 1-5, 24 per class, uncurated), in a copy under bench/work/,
with the validation carved from their own training lines: no real text trains or calibrates them. `dev` scores
the 'log' combination (sum of w x log p; the kNN's weight 1) for every weight pair of the grid on the whole
real-train half, plus the weights the carve itself would choose, and chooses by top-1. `test` trains the ensemble
with the chosen weights (engine.coders.ensemble, product path) and reads the test half once, beside the kNN alone
and the carve-chosen ensemble.
Results: bench/results/ensemble-zero-real-{dev,test}-nace-full.{json,md}; with --lexical,
ensemble-zero-real-lexical-{dev,test}-nace-full.{json,md} (the three-member files stay as they were measured);
with --grams N (the lexical coder's terms are words and their character N-grams; without it, words only, as
the lexical files were measured), ensemble-zero-real-lexical-gramsN-{dev,test}-nace-full.{json,md}; with
--redirected (the notes arm also holds the excluded activities other codes' notes send to each code),
...-redirected-{dev,test}-nace-full.{json,md}; with --heads BETA (the ensemble adds the title-heads term,
engine.coders.heads, at that weight; dev grids the weight), ...-heads-{dev,test}-nace-full.{json,md}. Without
--heads the ensembles are trained without the term (heads 0), as the earlier files were measured.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import command_line, load_result, machine, now, work_copy, write_result  # noqa: E402
from bench.knn_prototypes import RUNS, SOURCE  # noqa: E402  (the same notes and synthetic samples)
from engine.coders.data import DataMix, build_training_data  # noqa: E402
from engine.coders.ensemble import LOG_WEIGHT_GRID, choose_log_weights, log_matrix  # noqa: E402
from engine.coders.registry import get_model, load_coder  # noqa: E402
from engine.coders.lexical import LexicalOptions  # noqa: E402
from engine.coders.train import train_coder  # noqa: E402
from engine.store.project import Project  # noqa: E402

WORK = ROOT / "bench" / "work" / "ensemble-zero-real-nace-full.statcoder"
DEV, TEST = "ensemble-zero-real-dev-nace-full", "ensemble-zero-real-test-nace-full"
MEMBERS = ("knn", "embedding", "fasttext")       # knn first: its weight is 1; main() adds "lexical" (--lexical)
GRAMS = 0        # the lexical member's character n-grams (--grams); 0: words only, as first measured
VARIANT = ""     # what names the lexical member's models and result files apart: "" or " (4-grams)"
# --redirected: the notes arm also holds the lines other codes' excludes send to each code (the product's
# default since it was measured, engine.coders.data.DataMix.redirected_notes); without it, the notes as the
# earlier result files were measured.
REDIRECTED = False
# --coverage: the lexical member with the product's coverage and prior terms (engine.coders.lexical); without
# it, BM25 alone, as the earlier result files were measured.
COVERAGE = False
COVERAGE_GRID = (0.0, 16.0, 32.0, 48.0, 64.0)
PRIOR_GRID = (0.0, 1.0, 3.0, 5.0)
# --heads BETA: the ensemble with the title-heads term at that weight (engine.coders.heads); 0: without it
HEADS = 0.0
HEADS_GRID = (0.0, 1.0, 3.0, 10.0, 20.0, 50.0)


def use_lexical(grams: int = 0) -> None:
    """The four-member setting (--lexical): the lexical coder joins, and the result files are its own."""
    global MEMBERS, DEV, TEST, GRAMS, VARIANT
    if "lexical" not in MEMBERS:
        MEMBERS = (*MEMBERS, "lexical")
        GRAMS, VARIANT = grams, f" ({grams}-grams)" if grams else ""
        infix = "zero-real-lexical-" + (f"grams{grams}-" if grams else "")
        DEV, TEST = (name.replace("zero-real-", infix) for name in (DEV, TEST))


def use_redirected() -> None:
    """The redirected-notes setting (--redirected): every member's models and the result files are its own."""
    global REDIRECTED, DEV, TEST
    if not REDIRECTED:
        REDIRECTED = True
        DEV, TEST = DEV.replace("-dev-", "-redirected-dev-"), TEST.replace("-test-", "-redirected-test-")


def use_coverage() -> None:
    """The coverage setting (--coverage): the lexical member's and the ensemble's models and the result files
    are their own."""
    global COVERAGE, DEV, TEST
    if not COVERAGE:
        COVERAGE = True
        DEV, TEST = DEV.replace("-dev-", "-coverage-dev-"), TEST.replace("-test-", "-coverage-test-")


def use_heads(beta: float) -> None:
    """The title-heads setting (--heads): the ensembles' models and the result files are their own."""
    global HEADS, DEV, TEST
    if beta and not HEADS:
        HEADS = float(beta)
        DEV, TEST = DEV.replace("-dev-", "-heads-dev-"), TEST.replace("-test-", "-heads-test-")


def lexical_options() -> LexicalOptions:
    """The lexical member's options: the product's with --coverage, else BM25 alone (as first measured)."""
    return LexicalOptions(grams=GRAMS) if COVERAGE else LexicalOptions(grams=GRAMS, coverage=0.0, prior=0.0)


def model_suffix(kind: str) -> str:
    return ((VARIANT if kind in ("lexical", "ensemble") else "") + (" (redirected notes)" if REDIRECTED else "")
            + (f" (coverage {lexical_options().coverage:g}, prior {lexical_options().prior:g})"
               if COVERAGE and kind in ("lexical", "ensemble") else "")
            + (f" (title heads {HEADS:g})" if HEADS and kind == "ensemble" else ""))


def open_work() -> Project:
    return work_copy(SOURCE, WORK)


def mix() -> DataMix:
    return DataMix(notes=1, synthetic=1, run_ids=RUNS, validation_share=0.1, validation_from="training",
                   redirected_notes=REDIRECTED)


def model_by_name(project: Project, name: str) -> int | None:
    row = project.conn.execute("SELECT id FROM models WHERE name = ? ORDER BY id DESC", (name,)).fetchone()
    return row[0] if row else None


def members(project: Project) -> dict[str, int]:
    """The three member coders, trained once per work project."""
    out = {}
    for kind in MEMBERS:
        name = f"bench zero-real ensemble member: {kind}" + model_suffix(kind)
        model_id = model_by_name(project, name)
        if model_id is None:
            print(f"[{now()}] training {kind}", file=sys.stderr, flush=True)
            model_id = train_coder(project, mix(), kind=kind, name=name, make_default=False,
                                   lexical=lexical_options()).model_id
        out[kind] = model_id
    return out


def ensemble(project: Project, ids: dict[str, int], weights: list[float]) -> int:
    name = f"bench zero-real ensemble (calibrated): log {weights}" + model_suffix("ensemble")
    model_id = model_by_name(project, name)
    if model_id is None:
        model_id = train_coder(project, mix(), kind="ensemble", name=name, make_default=False,
                               members=[ids[k] for k in MEMBERS], combination="log", weights=weights,
                               heads=HEADS).model_id
    return model_id


def carve_weights(project: Project, ids: dict[str, int]) -> list[float]:
    """The weights the carve of the training lines would choose (the product takes ZERO_REAL_LOG_WEIGHTS
    instead): engine.coders.ensemble's grid over the members' carve predictions, the kNN as it was before
    it joined the carve to its references."""
    data = build_training_data(project, mix())
    texts, gold = [t for t, _ in data.validation], [c for _, c in data.validation]
    preds = []
    for kind in MEMBERS:
        coder = load_coder(project, ids[kind])[0]
        coder = coder.held_out() if hasattr(coder, "held_out") else coder
        preds.append([dict(p) for p in coder.predict_many(texts, len(coder.codes))])
    return choose_log_weights(preds, gold)[0]


def log_probs(coder, texts: list[str], codes: list[str], chunk: int = 500) -> np.ndarray:
    """(texts, codes) log-probabilities of one coder, as the product's 'log' ensemble reads them, in chunks."""
    return np.vstack([log_matrix([[dict(p) for p in coder.predict_many(texts[start:start + chunk], len(coder.codes))]],
                                 codes)[0].astype(np.float32) for start in range(0, len(texts), chunk)])


def accuracy(scores: np.ndarray, gold: np.ndarray) -> dict:
    top = np.argpartition(-scores, 5, axis=1)[:, :5]
    return {"top1": round(float((scores.argmax(axis=1) == gold).mean()), 4),
            "top5": round(float((top == gold[:, None]).any(axis=1).mean()), 4), "n": int(len(gold))}


def real_rows(project: Project, split: str) -> list[tuple[str, str]]:
    return project.conn.execute("SELECT text, code FROM real_texts WHERE split = ? ORDER BY id", (split,)).fetchall()


def score_coder(project: Project, model_id: int, rows, sample: list[bool] | None = None) -> dict:
    """Top-1/top-5 on the rows; with `sample` (a mask over them), also on those rows: the judge's fixed test ids."""
    coder, _ = load_coder(project, model_id)
    start = time.perf_counter()
    preds = coder.predict_many([t for t, _ in rows], 5)
    seconds = time.perf_counter() - start

    def tops(pairs) -> dict:
        n = max(1, len(pairs))
        return {"top1": round(sum(p[0][0] == c for p, (_, c) in pairs) / n, 4),
                "top5": round(sum(c in [k for k, _ in p] for p, (_, c) in pairs) / n, 4), "n": len(pairs)}

    out = {**tops(list(zip(preds, rows))), "seconds": round(seconds, 1),
           "model_sha256": get_model(project, model_id).sha256,
           "temperature": get_model(project, model_id).params.get("temperature")}
    if sample is not None:
        out["judge_test_sample"] = tops([(p, r) for p, r, keep in zip(preds, rows, sample) if keep])
    return out


def judge_sample_mask(project: Project) -> list[bool] | None:
    """Which test rows (in real_rows order) are bench.judge's 600 fixed test ids, when that file exists."""
    path = ROOT / "bench" / "results" / "judge-test-ids-nace-full-600.json"
    if not path.exists():
        return None
    import json

    wanted = set(json.loads(path.read_text(encoding="utf-8"))["ids"])
    return [i in wanted for (i,) in project.conn.execute("SELECT id FROM real_texts WHERE split = 'test' ORDER BY id")]


def dev_logs(project: Project, ids: dict[str, int]) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, list[str]]:
    """Each member's log-probabilities on real-train (the development texts whose code the kNN knows), with
    those texts, their gold indices and the codes (the columns)."""
    rows = real_rows(project, "train")
    coders = {k: load_coder(project, v)[0] for k, v in ids.items()}
    codes = sorted(coders["knn"].codes)
    index = {c: j for j, c in enumerate(codes)}
    keep = [i for i, (_, c) in enumerate(rows) if c in index]
    texts, gold = [rows[i][0] for i in keep], np.array([index[rows[i][1]] for i in keep])
    return {k: log_probs(c, texts, codes) for k, c in coders.items()}, texts, gold, codes


def cmd_dev() -> dict:
    project = open_work()
    ids = members(project)
    logs, texts, gold, codes = dev_logs(project, ids)
    out: dict[str, dict] = {k: accuracy(v, gold) for k, v in logs.items()}
    grid = {}
    for rest in itertools.product(LOG_WEIGHT_GRID, repeat=len(MEMBERS) - 1):
        weights = [1.0, *rest]
        grid[str(weights)] = {**accuracy(sum(w * logs[k] for w, k in zip(weights, MEMBERS)), gold), "weights": weights}
        print(f"[{now()}] {weights}: {grid[str(weights)]['top1']:.3f}", file=sys.stderr, flush=True)
    carve = carve_weights(project, ids)
    chosen = max(grid.values(), key=lambda v: (v["top1"], v["top5"]))["weights"]
    return {"members": {k: {**out[k], "model_id": ids[k], "model_sha256": get_model(project, ids[k]).sha256}
                        for k in MEMBERS},
            "grid": grid, "carve_weights": carve, "carve_on_dev": grid[str(carve)],
            "chosen": chosen,
            # with --heads, the heads grid instead of the coverage grid (measured before, and minutes long)
            **({"heads_grid": heads_grid(project, logs, texts, gold, codes, chosen)} if HEADS else
               {"coverage_grid": coverage_grid(project, logs, texts, gold, codes)} if COVERAGE else {})}


def heads_grid(project: Project, logs: dict, texts: list[str], gold: np.ndarray, codes: list[str],
               weights: list[float]) -> dict:
    """The ensemble at the chosen weights plus the title-heads term (engine.coders.heads) for every weight of
    HEADS_GRID: how the product's ZERO_REAL_BETA was chosen; and the texts marked with an activity, each alone."""
    from engine.coders.heads import TitleHeads, code_heads

    base = sum(w * logs[k] for w, k in zip(weights, MEMBERS))
    heads = code_heads(project, codes)
    out = {}
    for beta in HEADS_GRID:
        score = base + TitleHeads(heads, beta).term(texts, codes)
        out[f"{beta:g}"] = {"beta": beta, **accuracy(score, gold),
                            "marked": {mark: accuracy(score[rows], gold[rows]) for mark, rows in marks(texts).items()}}
        print(f"[{now()}] heads {beta:g}: {out[f'{beta:g}']['top1']:.4f}", file=sys.stderr, flush=True)
    return out


def marks(texts: list[str]) -> dict[str, np.ndarray]:
    """The rows of the texts whose last bracket is one of the UK SIC index's activity marks (report only)."""
    out = {}
    for mark in ("(manufacture)", "(wholesale)", "(retail)", "(commission agent)"):
        rows = np.array([i for i, t in enumerate(texts) if t.lower().rstrip().endswith(mark)], dtype=np.int64)
        if len(rows):
            out[mark] = rows
    return out


def coverage_grid(project: Project, logs: dict, texts: list[str], gold: np.ndarray, codes: list[str]) -> dict:
    """The lexical member refitted for every (coverage, prior) pair of the grid (engine.coders.lexical, as
    train_lexical fits it, on the same training lines), the others as trained, at the product's zero-real
    weights: how the product's defaults were chosen."""
    from engine.coders.ensemble import ZERO_REAL_LOG_WEIGHTS
    from engine.coders.lexical import LexicalCoder, notes_line_counts

    data = build_training_data(project, mix())
    notes_lines = notes_line_counts(data)
    rest = sum(w * logs[k] for w, k in zip(ZERO_REAL_LOG_WEIGHTS, MEMBERS) if k != "lexical")
    weight = ZERO_REAL_LOG_WEIGHTS[MEMBERS.index("lexical")]
    out = {}
    for coverage, prior in itertools.product(COVERAGE_GRID, PRIOR_GRID):
        coder = LexicalCoder.fit(data.train, grams=GRAMS, coverage=coverage, prior=prior, notes_lines=notes_lines)
        coder.calibrate([t for t, _ in data.validation], [c for _, c in data.validation])
        lexical = log_probs(coder, texts, codes)
        out[f"{coverage:g}, {prior:g}"] = {"coverage": coverage, "prior": prior, "alone": accuracy(lexical, gold),
                                           **accuracy(rest + weight * lexical, gold)}
        print(f"[{now()}] coverage {coverage:g}, prior {prior:g}: {out[f'{coverage:g}, {prior:g}']['top1']:.4f}",
              file=sys.stderr, flush=True)
    return out


def cmd_test(dev: dict) -> dict:
    project = open_work()
    ids = members(project)
    rows = real_rows(project, "test")
    sample = judge_sample_mask(project)
    out = {"knn alone": score_coder(project, ids["knn"], rows, sample)}
    out[f"log ensemble, weights chosen on dev {dev['chosen']}"] = score_coder(
        project, ensemble(project, ids, dev["chosen"]), rows, sample)
    if dev["carve_weights"] != dev["chosen"]:
        out[f"log ensemble, weights chosen on the carve {dev['carve_weights']}"] = score_coder(
            project, ensemble(project, ids, dev["carve_weights"]), rows, sample)
    return {"test": out, "chosen": dev["chosen"]}


def header(kind: str, result: dict) -> list[str]:
    return [f"# Zero-real ensemble, all of NACE (UK SIC index): {kind}", "",
            "Command: `" + result["command"] + "`", "",
            f"Created {result['created']}. {result['machine']['note']}.", "",
            "Members, trained through the product's path on the NACE notes and the 14,760 synthetic samples of runs "
            "1-5 in `bench/projects/nace-full-24.statcoder` (uncurated)"
            + (", the notes with the lines other codes' excludes send to each code (`DataMix.redirected_notes`)"
               if REDIRECTED else "") + ", validated on a carve of their own training "
            "lines: the kNN prototypes coder (knn), sentence embeddings + logistic regression (embedding), fastText"
            + (", the lexical coder (BM25 over each code's pooled lines"
               + (f"; its terms: words and their character {GRAMS}-grams" if GRAMS else "; its terms: words") + ")"
               if "lexical" in MEMBERS else "") + ". "
            "The 'log' ensemble scores a code by sum of w x log p over the members (the kNN's weight 1) and "
            "renormalises. No real text trains or calibrates them.", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ensemble_zero_real", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["dev", "test"])
    parser.add_argument("--lexical", action="store_true", help="add the lexical (BM25) coder as a fourth member")
    parser.add_argument("--grams", type=int, default=0,
                        help="the lexical member's terms: words and their character N-grams (0: words only)")
    parser.add_argument("--redirected", action="store_true",
                        help="the notes arm also holds the excluded activities other codes send to each code")
    parser.add_argument("--coverage", action="store_true",
                        help="the lexical member with the product's coverage and prior terms; dev also grids them")
    parser.add_argument("--heads", type=float, default=0.0,
                        help="the ensemble with the title-heads term at this weight; dev also grids it")
    args = parser.parse_args(argv)
    if args.grams and not args.lexical:
        parser.error("--grams is the lexical member's: give --lexical too")
    if args.lexical:
        use_lexical(args.grams)
    if args.redirected:
        use_redirected()
    if args.coverage:
        if not args.lexical:
            parser.error("--coverage is the lexical member's: give --lexical too")
        use_coverage()
    if args.heads:
        use_heads(args.heads)
    base = {"command": command_line("bench.ensemble_zero_real", argv), "created": now(), "machine": machine()}
    if args.step == "dev":
        result = {**base, **cmd_dev()}
        lines = header("development set (the real-train half, 7,887 texts)", result) + [
            "| coder | top-1 | top-5 |", "|---|---|---|"]
        lines += [f"| {k} alone | {v['top1']:.1%} | {v['top5']:.1%} |" for k, v in result["members"].items()]
        lines += [f"| log ensemble, weights ({', '.join(MEMBERS)}) {k} | {v['top1']:.1%} | {v['top5']:.1%} |"
                  for k, v in result["grid"].items() if any(v["weights"][1:])]
        lines += ["", f"The weights the carve of the training lines chooses: {result['carve_weights']} "
                  f"({result['carve_on_dev']['top1']:.1%} on dev).", "",
                  f"Chosen on dev: {result['chosen']}.", ""]
        if "coverage_grid" in result:
            lines += ["The lexical member's coverage and prior weights (BM25 score units), the member refitted for "
                      "each pair on the same lines, the other members as above, at the product's zero-real weights:",
                      "", "| coverage | prior | lexical alone top-1 | top-5 | ensemble top-1 | top-5 |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {v['coverage']:g} | {v['prior']:g} | {v['alone']['top1']:.1%} | {v['alone']['top5']:.1%} | "
                      f"{v['top1']:.1%} | {v['top5']:.1%} |" for v in result["coverage_grid"].values()]
            lines += [""]
        if "heads_grid" in result:
            found = list(next(iter(result["heads_grid"].values()))["marked"])
            lines += [f"The title-heads term (engine.coders.heads) added at the chosen weights {result['chosen']}: "
                      "a text that names a head (the first word of a title on a code's path, shared by at least 5 "
                      "codes) adds log(1 + beta x its heads on the code's path) to every code's score. Beside "
                      "the whole set, the texts marked with each activity (top-1 / top-5):", "",
                      "| beta | top-1 | top-5 | " + " | ".join(found) + " |",
                      "|---|---|---|" + "---|" * len(found)]
            lines += [f"| {v['beta']:g} | {v['top1']:.1%} | {v['top5']:.1%} | "
                      + " | ".join(f"{v['marked'][m]['top1']:.1%} / {v['marked'][m]['top5']:.1%} (n {v['marked'][m]['n']})"
                                   for m in found) + " |" for v in result["heads_grid"].values()]
            lines += [""]
        write_result(DEV, result, "\n".join(lines))
        return 0
    dev = load_result(DEV)
    if dev is None:
        raise SystemExit("run the dev step first")
    result = {**base, **cmd_test(dev)}
    lines = header("test half, read once", result) + ["| coder | top-1 | top-5 | n | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['top1']:.1%} | {v['top5']:.1%} | {v['n']:,} | {v['seconds']} |"
              for k, v in result["test"].items()]
    lines += [f"| {k}, on bench.judge's {v['judge_test_sample']['n']} fixed test ids | "
              f"{v['judge_test_sample']['top1']:.1%} | {v['judge_test_sample']['top5']:.1%} | "
              f"{v['judge_test_sample']['n']:,} | |" for k, v in result["test"].items() if "judge_test_sample" in v]
    lines += ["", f"The weights were chosen on the development set: {result['chosen']}. Each ensemble's temperature "
              "(fitted on the carve, where it validates the kNN as it was before joining the carve to its "
              "references) rescales its probabilities, not its ranking: "
              + "; ".join(f"{k}: {v['temperature']:.3f}" for k, v in result["test"].items() if v.get("temperature"))
              + ".", ""]
    write_result(TEST, result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
