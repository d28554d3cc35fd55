"""Development probes for `unlabelled-real` on all of NACE: can the uncoded backlog itself, or the LLM at coding
time, lift the best zero-real coder? Development split only; the test half is never read.

    PYTHONPATH=. python -m bench.unlabelled --labeller ensemble --grams 4 --redirected --coverage --dev \\
        --precision 0.9 --threshold 0                   # first: the development project this reads
    STATCODER_DATA_DIR=... PYTHONPATH=. python -m bench.unlabelled_probes [--rewrites 1000]

The development project (bench/work/unlabelled-nace-full-ensemble-grams4-redirected-coverage-dev.statcoder)
holds the labeller (the zero-real log ensemble of four, redirected notes, the lexical coder's 4-grams, coverage
and prior) and half of real-train as an uncoded backlog; the other half, its codes never in the project, is
scored. Self-training through the labeller gave nothing there (59.4 -> 59.1 % top-1). Each probe here puts
information from the backlog or the LLM into the labeller's scores without retraining, and scores the
scored half:

1. label spreading (Zhou et al. 2004) over the backlog's MiniLM kNN graph: the labeller's distributions
   smoothed by their neighbours', then carried to a scored text by its nearest backlog texts (weight beta);
2. hierarchy: each member's probability summed to the division (2 digits) or the group (3 digits), added
   in log with weight gamma (a member that places the division right but not the class);
3. prior adaptation by EM on the backlog (Saerens et al. 2002): the backlog's code frequencies estimated
   from the labeller's posteriors, their log added with weight lambda (temperature T);
4. the LLM rewrite (query expansion): the default LLM restates a text as a NACE-worded activity
   ('Dryers for wood (wholesale)' -> 'Wholesale of dryers for wood'), the labeller reads both, log
   p(text) + beta x log p(rewrite); on a seeded sample of the scored half (rewrites cached in bench/work/).

Writes bench/results/unlabelled-probes-dev-nace-full.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.ensemble_zero_real as zero_real  # noqa: E402
from bench.common import command_line, machine, now  # noqa: E402
from engine.coders.data import in_validation  # noqa: E402
from engine.coders.embedding.cache import embed_cached  # noqa: E402
from engine.coders.embedding.model import load_embedding_model  # noqa: E402
from engine.coders.registry import load_coder  # noqa: E402
from engine.store.project import Project  # noqa: E402
from engine.text import normalise_key  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
PROJECT = WORK / "unlabelled-nace-full-ensemble-grams4-redirected-coverage-dev.statcoder"
STEM = "unlabelled-probes-dev-nace-full"
SUFFIX = " (redirected notes) (coverage 48, prior 3)"
LABELLER = "bench zero-real ensemble (calibrated): log [1.0, 0.1, 0.1, 0.25] (4-grams)" + SUFFIX
MEMBERS = {"knn": "bench zero-real ensemble member: knn (redirected notes)",
           "embedding": "bench zero-real ensemble member: embedding (redirected notes)",
           "fasttext": "bench zero-real ensemble member: fasttext (redirected notes)",
           "lexical": "bench zero-real ensemble member: lexical (4-grams)" + SUFFIX}
WEIGHTS = {"knn": 1.0, "embedding": 0.1, "fasttext": 0.1, "lexical": 0.25}
REWRITE_PROMPT = (
    "You help code business descriptions into the NACE classification of economic activities. Rewrite the "
    "description as one short sentence naming the economic activity, the way NACE class titles and notes are "
    "worded (for example 'Manufacture of ...', 'Wholesale of ...', 'Retail sale of ...', 'Repair of ...', "
    "'Growing of ...', 'Activities of ...'). Say what the product or service is in plain words. Answer with "
    "the sentence only.")


def tops(scores: np.ndarray, gold: np.ndarray) -> list[float]:
    five = np.argpartition(-scores, 5, axis=1)[:, :5]
    return [round(float((scores.argmax(1) == gold).mean()) * 100, 2),
            round(float((five == gold[:, None]).any(1).mean()) * 100, 2)]


def softmax(logs: np.ndarray) -> np.ndarray:
    e = np.exp(logs - logs.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def model_id(project: Project, name: str) -> int:
    row = project.conn.execute("SELECT id FROM models WHERE name = ? ORDER BY id DESC", (name,)).fetchone()
    if row is None:
        raise SystemExit(f"{PROJECT.name} has no model {name!r}: run the bench.unlabelled --dev command first")
    return row[0]


def halves() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(backlog, scored): real-train split as bench.unlabelled --dev splits it."""
    source = sqlite3.connect(zero_real.SOURCE)
    truth = dict(source.execute("SELECT text, code FROM real_texts WHERE split = 'train'").fetchall())
    source.close()
    side = {t: in_validation("unlabelled-dev:" + normalise_key(t), 0.5) for t in truth}
    return (sorted((t, c) for t, c in truth.items() if not side[t]),
            sorted((t, c) for t, c in truth.items() if side[t]))


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def knn_average(sim: np.ndarray, values: np.ndarray, k: int, tau: float) -> np.ndarray:
    """Each row's k most similar columns' values, weighted by exp((similarity - 1) / tau)."""
    idx = np.argpartition(-sim, k, axis=1)[:, :k]
    w = np.exp((np.take_along_axis(sim, idx, 1) - 1) / tau)
    return (w[:, :, None] * values[idx]).sum(1) / w.sum(1, keepdims=True)


def spreading(lb, ls, xb, xs, gb, gs) -> list[dict]:
    pb = softmax(lb)
    within = xb @ xb.T
    np.fill_diagonal(within, -1.0)
    across = xs @ xb.T
    rows = [{"k": 0, "tau": tau, "alpha": 0.0, "backlog": tops(lb, gb),
             "scored": {beta: tops(ls + beta * np.log(knn_average(across, pb, 10, tau) + 1e-4), gs)
                        for beta in (0.25, 0.5, 1.0)}} for tau in (0.05, 0.1)]
    for k in (5, 10, 20):
        for tau in (0.05, 0.1):
            for alpha in (0.3, 0.5, 0.7):
                f = pb.copy()
                for _ in range(10):
                    f = (1 - alpha) * pb + alpha * knn_average(within, f, k, tau)
                carried = np.log(knn_average(across, f, 10, tau) + 1e-4)
                rows.append({"k": k, "tau": tau, "alpha": alpha, "backlog": tops(f, gb),
                             "scored": {beta: tops(ls + beta * carried, gs) for beta in (0.25, 0.5, 1.0)}})
    return rows


def hierarchy(members_s: dict, codes: list[str], gs) -> list[dict]:
    base = sum(WEIGHTS[m] * members_s[m] for m in WEIGHTS)
    rows = []
    for level, digits in (("division", 2), ("group", 4)):
        keys = sorted({c[:digits] for c in codes})
        where = {k: i for i, k in enumerate(keys)}
        up = np.zeros((len(codes), len(keys)), np.float32)
        for j, c in enumerate(codes):
            up[j, where[c[:digits]]] = 1
        for member in WEIGHTS:
            level_log = np.log(np.exp(members_s[member]) @ up + 1e-6) @ up.T
            rows.append({"level": level, "member": member,
                         "scored": {g: tops(base + g * level_log, gs) for g in (0.1, 0.25, 0.5, 1.0)}})
    return rows


def prior_adaptation(lb, ls, gs) -> list[dict]:
    n = lb.shape[1]
    rows = []
    for temp in (0.5, 1.0, 2.0):
        pb = softmax(lb / temp)
        prior = np.full(n, 1.0 / n)
        for it in range(1, 11):
            post = pb * prior * n
            post /= post.sum(1, keepdims=True)
            prior = post.mean(0)
            if it in (1, 3, 10):
                rows.append({"T": temp, "iterations": it, "scored": {
                    lam: tops(ls / temp + lam * np.log(prior * n + 1e-9), gs) for lam in (0.25, 0.5, 1.0)}})
    return rows


def rng_sample(size: int, n: int) -> list[int]:
    """Seeded indices: 200 drawn with seed 7 (a first look), then filled to n in the order of a permutation with
    seed 8; sorted."""
    chosen = np.random.default_rng(7).choice(size, min(n, 200), replace=False).tolist()
    for j in np.random.default_rng(8).permutation(size).tolist():
        if len(chosen) >= n:
            break
        if j not in chosen:
            chosen.append(j)
    return sorted(chosen)


def rewrites(scored: list[tuple[str, str]], n: int) -> list[dict]:
    """The LLM's rewrite of n seeded scored-half texts, cached (an interrupted run continues)."""
    from llama_cpp import Llama

    from engine.llm.registry import get_default_model

    chosen = rng_sample(len(scored), n)
    cache = WORK / f"unlabelled-probes-rewrites-{n}.jsonl"
    done = {}
    if cache.exists():
        done = {r["i"]: r for r in map(json.loads, cache.read_text(encoding="utf-8").splitlines())}
    todo = [i for i in chosen if i not in done]
    if todo:
        model = get_default_model()
        if model is None:
            raise SystemExit("no default LLM: python -m engine llm install-default")
        llm = Llama(model.path, n_ctx=512, n_threads=2, verbose=False, seed=0)
        with cache.open("a", encoding="utf-8") as handle:
            for i in todo:
                started = time.perf_counter()
                reply = llm.create_chat_completion(messages=[{"role": "system", "content": REWRITE_PROMPT},
                                                             {"role": "user", "content": scored[i][0]}],
                                                   temperature=0, max_tokens=40)
                row = {"i": i, "text": scored[i][0], "rewrite": reply["choices"][0]["message"]["content"].strip(),
                       "model_sha256": model.sha256, "s": round(time.perf_counter() - started, 2)}
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                done[i] = row
    return [done[i] for i in chosen]


def rewrite_probe(coder, codes, ls, gs, rows: list[dict]) -> dict:
    idx = np.array([r["i"] for r in rows])
    base, gold = ls[idx], gs[idx]
    alone = zero_real.log_probs(coder, [r["rewrite"] for r in rows], codes)
    rng = np.random.default_rng(0)
    out = {"n": len(rows), "seconds_per_text": round(float(np.mean([r["s"] for r in rows])), 2),
           "text": tops(base, gold), "rewrite alone": tops(alone, gold), "combined": {}}
    right0 = base.argmax(1) == gold
    for beta in (0.25, 0.5, 1.0, 2.0):
        mixed = base + beta * alone
        gain = (mixed.argmax(1) == gold).astype(float) - right0
        boot = [gain[s].mean() for s in (rng.integers(0, len(gold), len(gold)) for _ in range(2000))]
        out["combined"][beta] = {"tops": tops(mixed, gold), "gain": round(float(gain.mean()) * 100, 2),
                                 "ci95": [round(float(v) * 100, 2) for v in np.percentile(boot, [2.5, 97.5])],
                                 "changed": int((mixed.argmax(1) != base.argmax(1)).sum())}
    out["examples"] = [{"text": r["text"], "rewrite": r["rewrite"]} for r in rows[:8]]
    return out


def best(rows: list[dict]) -> tuple[float, dict, object]:
    return max(((v[0], r, key) for r in rows for key, v in r["scored"].items()), key=lambda t: t[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewrites", type=int, default=1000, help="scored-half texts the LLM rewrites (0: none)")
    args = parser.parse_args(argv)
    if not PROJECT.exists():
        raise SystemExit(f"{PROJECT} is missing: run the bench.unlabelled --dev command in the docstring first")
    started = time.perf_counter()
    project = Project.open(PROJECT)
    backlog, scored = halves()
    coder, _ = load_coder(project, model_id(project, LABELLER))
    codes = sorted(coder.codes)
    where = {c: i for i, c in enumerate(codes)}
    gb = np.array([where.get(c, -1) for _, c in backlog])
    gs = np.array([where.get(c, -1) for _, c in scored])
    lb = zero_real.log_probs(coder, [t for t, _ in backlog], codes)
    ls = zero_real.log_probs(coder, [t for t, _ in scored], codes)
    embedder = load_embedding_model()
    xb = unit(embed_cached(project, embedder, [t for t, _ in backlog]))
    xs = unit(embed_cached(project, embedder, [t for t, _ in scored]))
    members_s = {m: zero_real.log_probs(load_coder(project, model_id(project, name))[0], [t for t, _ in scored], codes)
                 for m, name in MEMBERS.items()}
    result = {"command": command_line("bench.unlabelled_probes", argv), "created": now(), "machine": machine(),
              "labeller": {"backlog": tops(lb, gb), "scored": tops(ls, gs), "n_backlog": len(gb), "n_scored": len(gs)},
              "spreading": spreading(lb, ls, xb, xs, gb, gs), "hierarchy": hierarchy(members_s, codes, gs),
              "prior": prior_adaptation(lb, ls, gs)}
    if args.rewrites:
        result["rewrite"] = rewrite_probe(coder, codes, ls, gs, rewrites(scored, args.rewrites))
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{STEM}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / f"{STEM}.md").write_text("\n".join(report(result)) + "\n", encoding="utf-8")
    print("\n".join(report(result)))
    return 0


def grid_section(rows: list[dict], title: str, header: str, keys: tuple[str, str], describe) -> list[str]:
    """A probe's grid: a row per setting, a top-1 / top-5 cell per weight, and the best cell."""
    top, row, weight = best(rows)
    return ([title, "", header, "|---" * (header.count("|") - 1) + "|"]
            + [f"| {x[keys[0]]} | {x[keys[1]]} | " + " | ".join(f"{v[0]:.1f} / {v[1]:.1f}" for v in x["scored"].values())
               + " |" for x in rows]
            + ["", f"Best: {top:.1f} % ({describe(row, weight)}).", ""])


def report(r: dict) -> list[str]:
    lab = r["labeller"]
    lines = ["# Unlabelled real texts, all of NACE: development probes beyond self-training", "",
             f"`{r['command']}`", "", f"Created {r['created']}. {r['machine']['note']}.", "",
             f"Development split only (the test half was not read). The labeller, the zero-real log ensemble of four "
             f"(redirected notes, 4-grams, coverage and prior), scores {lab['scored'][0]:.1f} % / {lab['scored'][1]:.1f} % "
             f"on the scored half ({lab['n_scored']} texts) and labels the backlog ({lab['n_backlog']} uncoded texts) "
             f"{lab['backlog'][0]:.1f} % right. Every cell is top-1 / top-5 on the scored half unless it says backlog.", ""]
    s = r["spreading"]
    top, row, beta = best(s)
    lines += ["## 1. Label spreading over the backlog", "",
              "| k | tau | alpha | backlog labels | beta 0.25 | beta 0.5 | beta 1.0 |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {x['k'] or 'none'} | {x['tau']} | {x['alpha']} | {x['backlog'][0]:.1f} | "
              + " | ".join(f"{v[0]:.1f} / {v[1]:.1f}" for v in x["scored"].values()) + " |" for x in s]
    lowered = all(x["backlog"][0] <= lab["backlog"][0] for x in s if x["k"])
    lines += ["", f"Best: {top:.1f} % (" + (f"k {row['k']}, alpha {row['alpha']}" if row["k"] else "no spreading")
              + f", tau {row['tau']}, beta {beta}) against "
              f"{lab['scored'][0]:.1f} %." + (" Spreading lowers the backlog's labels for every setting." if lowered
                                              else ""), ""]
    lines += grid_section(r["hierarchy"], "## 2. Division and group agreement",
                          "| level | member | gamma 0.1 | 0.25 | 0.5 | 1.0 |", ("level", "member"),
                          lambda row, g: f"{row['level']}, {row['member']}, gamma {g}")
    lines += grid_section(r["prior"], "## 3. Prior adaptation by EM on the backlog",
                          "| T | iterations | lambda 0.25 | 0.5 | 1.0 |", ("T", "iterations"),
                          lambda row, lam: f"T {row['T']}, {row['iterations']} iterations, lambda {lam}")
    w = r.get("rewrite")
    if w:
        lines += ["## 4. The LLM rewrite", "",
                  f"{w['n']} seeded texts of the scored half, {w['seconds_per_text']} s per rewrite (default LLM, 2 "
                  f"threads). The labeller on the text: {w['text'][0]:.1f} / {w['text'][1]:.1f}; on the rewrite alone: "
                  f"{w['rewrite alone'][0]:.1f} / {w['rewrite alone'][1]:.1f}.", "",
                  "| beta | top-1 / top-5 | top-1 gain | 95 % interval (paired bootstrap) | first code changed |",
                  "|---|---|---|---|---|"]
        lines += [f"| {b} | {v['tops'][0]:.1f} / {v['tops'][1]:.1f} | {v['gain']:+.2f} | {v['ci95'][0]:+.2f} to "
                  f"{v['ci95'][1]:+.2f} | {v['changed']} |" for b, v in w["combined"].items()]
        lines += ["", "What the rewrites look like (the first texts of the sample):", "",
                  "| text | rewrite |", "|---|---|"]
        lines += [f"| {e['text']} | {e['rewrite']} |" for e in w["examples"]]
        lines += [""]
    gains = [best(r[key])[0] - lab["scored"][0] for key in ("spreading", "hierarchy", "prior")]
    if w:
        gains.append(max(v["gain"] for v in w["combined"].values()))
    lines += [f"Run time {r['seconds']} s. The largest top-1 gain of any probe: {max(gains):+.2f} points"
              + (" (under one point, so none was carried to the test half)." if max(gains) < 1 else ".")]
    return lines


if __name__ == "__main__":
    sys.exit(main())
