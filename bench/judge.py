"""The LLM judge on a whole classification: a development probe on the real-train half, then the test half once.

    STATCODER_DATA_DIR=/work/notes/data PYTHONPATH=. python -m bench.judge dev --n 120
    STATCODER_DATA_DIR=/work/notes/data PYTHONPATH=. python -m bench.judge test --n 150
    ... python -m bench.judge dev --benchmark naics --n 80      # NAICS 2017 with the NAICS index
    ... python -m bench.judge dev --coder real+notes --n 120    # does the judge help a coder trained on real data?
    ... python -m bench.judge dev --method channel --n 120      # the channel judge: log P(text | card)

NACE (UK SIC index) starts from bench/projects/nace-full.statcoder; NAICS from a fresh project holding the
built-in NAICS 2017 and its index (bench/work/judge-naics-full.statcoder). Result files, verdict caches and
the committed test ids are per benchmark (NACE keeps its original names).

The coder is the notes-only embedding kNN (semantic search over the note lines, the best zero-real
figure in bench/results/anchors-nace-full.md), its temperature chosen on a carve of its own training
lines (no real text). The judge is the default LLM (Qwen2.5-Coder 1.5B Q4_K_M), one thread, shown the
coder's k best candidates (code, title, two note lines), only for texts whose coder probability is
below the auto-code threshold. `--coder real+notes` re-ranks the embedding coder trained on the notes and
real-train instead; its dev texts come from its own 10 % validation carve of real-train (the texts it did
not train on), and its files are named `judge-nace-full-real+notes.*`; the test ids are shared.

`dev`: a seeded sample of real-train texts (never test); every verdict keeps both candidate orders, so
one pass compares one order vs two, with and without the fitted position prior. Each variant's combined
top-1 is cross-fitted (combination fitted on one half of the dev texts, scored on the other, and back).
`test`: only when dev shows a gain; a fixed seeded sample of test ids (written to
bench/results/judge-test-ids-nace-full.json), the settings fitted on the whole dev sample, the unjudged
coder scored on the same sample and on the whole test half.
Verdicts are cached in bench/work/, so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCHMARKS, command_line, machine, now  # noqa: E402
from engine.classification import import_builtin  # noqa: E402
from engine.realdata.importing import import_preset  # noqa: E402
from engine.assist.judge import candidates_for  # noqa: E402
from engine.coders.registry import load_coder  # noqa: E402
from engine.coders.embedding.cache import embed_cached  # noqa: E402
from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding  # noqa: E402
from engine.coders.data import DataMix, in_validation  # noqa: E402
from engine.llm.backends import BackendSettings, HardwareSettings, open_backend  # noqa: E402
from engine.llm.judge import (Combination, JudgeOptions, JudgeVerdict, channel_card, combine,  # noqa: E402
                              fit_combination, fit_position_prior, judge_candidates, recalibrate)
from engine.llm.registry import get_default_model  # noqa: E402
from engine.store.project import Project  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
SOURCE_PROJECT = ROOT / "bench" / "projects" / "nace-full.statcoder"
# benchmark -> (result/test-ids stem, verdict cache prefix, the classification's name in the judge's prompt, title)
SETUPS = {"nace-uksic": ("nace-full", "judge-verdicts", "NACE Rev. 2", "all of NACE (UK SIC index)"),
          "naics": ("naics-full", "judge-verdicts-naics", "NAICS 2017", "all of NAICS 2017 (NAICS index)")}
BENCH = "nace-uksic"   # set by main()
# coder -> (file-name suffix, label in the tables). "real+notes": the embedding coder (logistic head) trained
# on the notes and real-train less its validation carve; the dev texts are drawn from that carve only.
CODERS = {"notes-knn": ("", "zero-real (notes kNN)"), "real+notes": ("-real+notes", "real+notes (embedding)"),
          # the kNN with prototypes chosen by bench.knn_prototypes (notes + 24 synthetic samples per class)
          "prototypes": ("-prototypes", "zero-real (kNN prototypes: notes + 24 synthetic per class)"),
          # the log ensemble of that kNN, the embedding regression and fastText, weights by bench.ensemble_zero_real
          "ensemble": ("-ensemble", "zero-real (log ensemble: kNN prototypes x embedding LR x fastText)"),
          # the same with the lexical coder as a fourth member (bench.ensemble_zero_real --lexical)
          "ensemble-lexical": ("-ensemble-lexical",
                               "zero-real (log ensemble: kNN prototypes x embedding LR x fastText x lexical)"),
          # the same with the lexical coder's terms as the product cuts them now: words and their 4-grams
          # (bench.ensemble_zero_real --lexical --grams 4)
          "ensemble-lexical-grams4": ("-ensemble-lexical-grams4", "zero-real (log ensemble: kNN prototypes x "
                                      "embedding LR x fastText x lexical of words and 4-grams)"),
          # the best zero-real coder now: the same four with redirected notes, the lexical coder's coverage and
          # prior, and the title heads (bench.ensemble_zero_real --lexical --grams 4 --redirected --coverage
          # --heads 20)
          "ensemble-heads": ("-ensemble-heads", "zero-real (the four with redirected notes, coverage and prior, "
                             "and title heads)")}
ENSEMBLES = ("ensemble", "ensemble-lexical", "ensemble-lexical-grams4", "ensemble-heads")   # from
# bench.ensemble_zero_real
CODER = "notes-knn"    # set by main()
# judge method -> (file-name suffix, note lines per candidate). "channel": log P(text | card) per candidate
# (engine.llm.channel), one pass, no positions; "letters": the lettered list, two orders.
METHODS = {"letters": ("", 2), "channel": ("-channel", 3)}
METHOD = "letters"     # set by main()
K = 5                  # set by main() (--k); the channel judge's dev also scores every smaller k of KS
THRESHOLD = 0.5        # set by main() (--threshold); dev also scores the texts below each of THRESHOLDS
KS = (5, 8, 10)
THRESHOLDS = (0.5, 0.8)
ORDERS = 2


def settings_suffix() -> str:
    """A non-default k or threshold marks the result and cache files (older files keep their names)."""
    return (f"-k{K}" if K != 5 else "") + (f"-t{THRESHOLD:g}" if THRESHOLD != 0.5 else "")


TEST_N = 200           # set by main() (--test-n): a larger fixed sample has files of its own


def stem(with_test_n: bool = True) -> str:
    return (SETUPS[BENCH][0] + CODERS[CODER][0] + METHODS[METHOD][0] + settings_suffix()
            + (f"-test{TEST_N}" if with_test_n and TEST_N != 200 else ""))


def test_ids_path(n: int | None = None) -> Path:
    # Shared by every coder of a benchmark, so that their judged arms read the same test texts.
    n = TEST_N if n is None else n
    return RESULTS / f"judge-test-ids-{SETUPS[BENCH][0]}{'' if n == 200 else f'-{n}'}.json"


def larger_test_ids(test_ids: list[int], n: int, seed: int) -> list[int]:
    """A fixed sample of n test ids that holds the committed 200 (their verdicts are reused) plus a seeded
    draw from the other test ids: together a seeded random sample of the test half."""
    base = json.loads(test_ids_path(200).read_text(encoding="utf-8"))["ids"]
    rest = sorted(set(test_ids) - set(base))
    # One seeded order of the rest, cut at n: a smaller sample is part of every larger one.
    order = random.Random(f"judge-test-larger:{seed}").sample(rest, len(rest))
    return sorted(base + order[:n - len(base)])


def open_project() -> Project:
    if CODER == "prototypes":
        from bench.knn_prototypes import open_work
        return open_work()
    if CODER in ENSEMBLES:
        from bench.ensemble_zero_real import open_work as open_ensemble_work
        return open_ensemble_work()
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"judge-{SETUPS[BENCH][0]}.statcoder"
    if path.exists():
        return Project.open(path)
    if BENCH == "nace-uksic":
        shutil.copy(SOURCE_PROJECT, path)
        return Project.open(path)
    project = Project.create(path)
    classification, real = BENCHMARKS[BENCH]
    import_builtin(project, classification)
    import_preset(project, real)
    return project


def coder_mix() -> tuple[str, DataMix, str]:
    """(model name, data mix, embedding mode) of the coder the judge re-ranks."""
    if CODER == "real+notes":
        return "bench judge: real+notes embedding lr", DataMix(notes=1, real=1, validation_share=0.1), "lr"
    if CODER in ("prototypes", *ENSEMBLES):   # trained by bench.knn_prototypes /
        # bench.ensemble_zero_real (no real text)
        return f"see bench.{'knn_prototypes' if CODER == 'prototypes' else 'ensemble_zero_real'}", \
            DataMix(notes=1, synthetic=1, validation_from="training"), "knn"
    return ("bench judge: notes-only embedding knn",
            DataMix(notes=1, validation_share=0.1, validation_from="training"), "knn")


def dev_pool(project: Project) -> list[tuple[int, str, str]]:
    """(id, text, code) of the real-train texts the dev sample is drawn from: all of them for the notes-only
    coder (it saw none), only the validation carve for a coder trained on real-train (never its training texts)."""
    rows = project.conn.execute("SELECT id, text, code, text_key FROM real_texts WHERE split = 'train' ORDER BY id")
    _, mix, _ = coder_mix()
    carve = mix.real and mix.validation_from == "real"
    return [(i, t, c) for i, t, c, k in rows if not carve or in_validation(k, mix.validation_share)]


def coder_for(project: Project):
    """The coder the judge re-ranks, trained once per work project (model name marks it)."""
    if CODER == "prototypes":
        from bench.common import load_result
        from bench.knn_prototypes import DEV, coder_for as prototypes_coder
        chosen = load_result(DEV)
        if chosen is None:
            raise SystemExit("run python -m bench.knn_prototypes dev first")
        return prototypes_coder(project, chosen["chosen"])
    if CODER in ENSEMBLES:
        import bench.ensemble_zero_real as zero_real
        from bench.common import load_result
        if CODER != "ensemble":
            zero_real.use_lexical(4 if CODER in ("ensemble-lexical-grams4", "ensemble-heads") else 0)
        if CODER == "ensemble-heads":
            zero_real.use_redirected()
            zero_real.use_coverage()
            zero_real.use_heads(20.0)
        ensemble, members = zero_real.ensemble, zero_real.members
        chosen = load_result(zero_real.DEV)
        if chosen is None:
            raise SystemExit("run python -m bench.ensemble_zero_real dev first")
        return load_coder(project, ensemble(project, members(project), chosen["chosen"]))
    name, mix, mode = coder_mix()
    row = project.conn.execute("SELECT id FROM models WHERE name = ? ORDER BY id DESC", (name,)).fetchone()
    if row is None:
        result = train_embedding(project, mix, EmbeddingTrainOptions(mode=mode, name=name, make_default=False))
        model_id = result.model_id
    else:
        model_id = row[0]
    coder, record = load_coder(project, model_id)
    return coder, record


def predict(project: Project, coder, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
    if not hasattr(coder, "predict_vectors"):   # the ensemble: its members embed for themselves
        return coder.predict_many(texts, k)
    vectors = embed_cached(project, coder.embedder, texts)
    return coder.predict_vectors(vectors, k)


def cache_path(kind: str) -> Path:
    return WORK / f"{SETUPS[BENCH][1]}{CODERS[CODER][0]}{METHODS[METHOD][0]}{settings_suffix()}-{kind}.jsonl"


def restrict(verdict: JudgeVerdict, k: int) -> JudgeVerdict:
    """A channel verdict over the coder's first k candidates only: the same card scores, renormalised
    (exactly what the judge would have said shown those k, since each card is scored on its own)."""
    if k >= len(verdict.codes):
        return verdict
    probs = verdict.probs[:k]
    total = sum(probs) or 1.0
    probs = tuple(p / total for p in probs)
    return JudgeVerdict(verdict.codes[:k], probs, (probs,), (tuple(range(k)),), verdict.seconds, verdict.prompt_tokens)


def channel_variant(verdicts: dict[int, JudgeVerdict], preds, k: int, threshold: float) -> dict[int, JudgeVerdict]:
    return {i: restrict(v, k) for i, v in verdicts.items() if preds[i][0][1] < threshold}


def load_cache(kind: str) -> dict[int, JudgeVerdict]:
    path = cache_path(kind)
    out: dict[int, JudgeVerdict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            out[int(entry["id"])] = JudgeVerdict.from_json(entry["verdict"])
    return out


def judge_all(project: Project, backend, rows, preds, kind: str, orders: int, k: int | None = None,
              threshold: float | None = None) -> tuple[dict[int, JudgeVerdict], float]:
    """Verdicts (uncalibrated) for the unsure rows, from the cache where there; seconds per new verdict."""
    k = K if k is None else k
    threshold = THRESHOLD if threshold is None else threshold
    cache = load_cache(kind)
    options = JudgeOptions(orders=orders, classification=SETUPS[BENCH][2], method=METHOD,
                           max_lines=METHODS[METHOD][1])
    seconds, fresh = 0.0, 0
    with open(cache_path(kind), "a", encoding="utf-8") as handle:
        todo = [(rid, text, pred) for (rid, text, _), pred in zip(rows, preds) if pred[0][1] < threshold]
        for n, (rid, text, pred) in enumerate(todo):
            if rid in cache:
                continue
            started = time.perf_counter()
            verdict = judge_candidates(backend, text, candidates_for(project, [c for c, _ in pred[:k]]),
                                       options=options)
            seconds += time.perf_counter() - started
            fresh += 1
            cache[rid] = verdict
            handle.write(json.dumps({"id": rid, "verdict": verdict.to_json()}) + "\n")
            handle.flush()
            print(f"[{now()}] {kind} {n + 1}/{len(todo)} {seconds / fresh:.1f} s/text", file=sys.stderr, flush=True)
    return cache, (seconds / fresh if fresh else None)


def first_order(verdict: JudgeVerdict) -> JudgeVerdict:
    return JudgeVerdict(verdict.codes, verdict.probs, verdict.raw[:1], verdict.orders[:1], verdict.seconds,
                        verdict.prompt_tokens)


def variant(verdicts: dict[int, JudgeVerdict], orders: int, prior) -> dict[int, JudgeVerdict]:
    picked = {i: (first_order(v) if orders == 1 else v) for i, v in verdicts.items()}
    return {i: recalibrate(v, prior) for i, v in picked.items()}


def top(preds, gold) -> tuple[float, float]:
    n = max(1, len(gold))
    return (sum(p[0][0] == g for p, g in zip(preds, gold)) / n,
            sum(g in [c for c, _ in p[:5]] for p, g in zip(preds, gold)) / n)


def cross_fitted(ids, preds, verdicts, gold) -> dict:
    """Combined top-1 with the combination fitted on the other half of the dev texts."""
    half = {i: n % 2 for n, i in enumerate(ids)}
    out_preds = {}
    fits = []
    for fold in (0, 1):
        fit_ids = [i for i in ids if half[i] != fold]
        fit = fit_combination([preds[i] for i in fit_ids], [verdicts.get(i) for i in fit_ids],
                              [gold[i] for i in fit_ids])
        fits.append(fit.combination.to_dict())
        for i in ids:
            if half[i] == fold:
                out_preds[i] = combine(preds[i], verdicts.get(i), fit.combination)
    t1, t5 = top([out_preds[i] for i in ids], [gold[i] for i in ids])
    return {"top1": round(t1, 4), "top5": round(t5, 4), "fold_combinations": fits}


def cmd_dev(args) -> dict:
    project = open_project()
    coder, record = coder_for(project)
    rows = dev_pool(project)
    rng = random.Random(f"judge-dev:{args.seed}")
    rows = sorted(rng.sample(rows, args.n))
    preds_list = predict(project, coder, [t for _, t, _ in rows], max(K, 5))
    ids = [r[0] for r in rows]
    preds = dict(zip(ids, preds_list))
    gold = {r[0]: r[2] for r in rows}
    backend = open_backend(judge_settings(args.threads))
    raw, s_per = judge_all(project, backend, rows, preds_list, "dev", ORDERS if METHOD == "letters" else 1)
    raw = {i: v for i, v in raw.items() if i in preds}
    unsure = [i for i in ids if preds[i][0][1] < THRESHOLD]
    coder_t1, coder_t5 = top([preds[i] for i in ids], [gold[i] for i in ids])
    present = [i for i in unsure if gold[i] in raw[i].codes]
    report = {"coder_top1": round(coder_t1, 4), "coder_top5": round(coder_t5, 4), "n": len(ids),
              "unsure": len(unsure), "share_judged": round(len(unsure) / len(ids), 4),
              "gold_among_candidates_when_judged": round(len(present) / max(1, len(unsure)), 4),
              "seconds_per_judged_text": s_per, "variants": {}}
    if METHOD == "channel":
        for kk in sorted({k for k in KS if k < K} | {K}):
            for th in sorted({t for t in THRESHOLDS if t < THRESHOLD} | {THRESHOLD}):
                verdicts = channel_variant(raw, preds, kk, th)
                judged = [i for i in ids if i in verdicts]
                here = [i for i in judged if gold[i] in verdicts[i].codes]
                alone = sum(verdicts[i].best[0] == gold[i] for i in judged) / max(1, len(judged))
                alone_present = sum(verdicts[i].best[0] == gold[i] for i in here) / max(1, len(here))
                report["variants"][f"k={kk}, threshold={th:g} (channel)"] = {
                    "judged": len(judged), "gold_among_candidates_when_judged": round(len(here) / max(1, len(judged)), 4),
                    "judge_alone_top1_on_judged": round(alone, 4), "judge_alone_top1_when_gold_present": round(alone_present, 4),
                    "first_order_argmax_positions": dict(sorted(Counter(
                        "ABCDEFGHIJKL"[verdicts[i].probs.index(max(verdicts[i].probs))] for i in judged).items())),
                    "prior": None, "combined_cross_fitted": cross_fitted(ids, preds, verdicts, gold)}
    for orders in ((1, 2) if METHOD == "letters" else ()):
        for use_prior in (False, True):
            base = variant(raw, orders, None)
            prior = fit_position_prior(base.values(), K) if use_prior else None
            verdicts = variant(raw, orders, prior)
            alone = sum(verdicts[i].best[0] == gold[i] for i in unsure) / max(1, len(unsure))
            alone_present = sum(verdicts[i].best[0] == gold[i] for i in present) / max(1, len(present))
            answered = Counter(verdicts[i].raw[0].index(max(verdicts[i].raw[0])) for i in unsure)
            name = f"orders={orders}, prior={'fitted' if use_prior else 'none'}"
            report["variants"][name] = {
                "judge_alone_top1_on_judged": round(alone, 4), "judge_alone_top1_when_gold_present": round(alone_present, 4),
                "first_order_argmax_positions": {"ABCDE"[p]: c for p, c in sorted(answered.items())},
                "prior": [round(p, 4) for p in prior] if prior else None,
                "combined_cross_fitted": cross_fitted(ids, preds, verdicts, gold)}
    # Ties go to the cheaper variant: fewer orders, fewer candidates, fewer texts judged. `--choose sum`
    # ranks by top-1 + top-5 (the target has both; with k > 5 the judge can lift top-5 too).
    def merit(kv) -> tuple[float, float]:
        scored = kv[1]["combined_cross_fitted"]
        return (scored["top1"] + (scored["top5"] if args.choose == "sum" else 0.0), -cost_of(kv[0]))
    best = max(report["variants"].items(), key=merit)
    report["chosen"], report["chosen_by"] = best[0], ("top-1 + top-5" if args.choose == "sum" else "top-1")
    report["gain_on_dev"] = round(best[1]["combined_cross_fitted"]["top1"] - coder_t1, 4)
    backend.close()
    return {"coder": coder_facts(record), "judge": judge_facts(backend), "dev": report}


def cost_of(variant_name: str) -> float:
    """How much a dev variant costs, for breaking ties: orders (letters) or k and threshold (channel)."""
    chosen = parse_variant(variant_name)
    return chosen["orders"] + chosen["k"] * 10 + chosen["threshold"]


def parse_variant(variant_name: str) -> dict:
    """orders, prior, k and threshold of a chosen dev variant (older result files name only the first two)."""
    fields = dict(part.split("=") for part in variant_name.split(" (")[0].split(", "))
    return {"orders": int(fields.get("orders", 1)), "prior": fields.get("prior") == "fitted",
            "k": int(fields.get("k", 5)), "threshold": float(fields.get("threshold", 0.5))}


def judge_settings(threads: int) -> BackendSettings:
    info = get_default_model()
    if info is None:
        raise SystemExit("no default LLM registered: set STATCODER_DATA_DIR to where it is installed")
    return BackendSettings(model_path=info.path, hardware=HardwareSettings(threads=threads, n_ctx=2048, parallel=1))


def coder_facts(record) -> dict:
    return {"model_id": record.id, "name": record.name, "kind": record.kind, "sha256": record.sha256,
            "mode": record.params.get("mode"), "data": {k: record.data.get(k) for k in ("counts", "validation_from")}}


def judge_facts(backend) -> dict:
    return {"model": backend.model_name, "sha256": backend.model_sha256, "k": K, "threshold": THRESHOLD, "method": METHOD,
            "threads": backend.settings.hardware.threads, "device": backend.device}


def cmd_test(args, dev_result: dict) -> dict:
    dev = dev_result["dev"]
    chosen = parse_variant(dev["chosen"])   # "orders=1, prior=none (channel)" in older channel files
    orders, use_prior = chosen["orders"], chosen["prior"]
    k, threshold = chosen["k"], chosen["threshold"]
    project = open_project()
    coder, record = coder_for(project)
    # Fit the chosen variant on the whole dev sample.
    rows = dev_pool(project)
    dev_rows = sorted(random.Random(f"judge-dev:{args.seed}").sample(rows, dev["n"]))
    dev_preds = dict(zip([r[0] for r in dev_rows], predict(project, coder, [t for _, t, _ in dev_rows], max(K, 5))))
    dev_gold = {r[0]: r[2] for r in dev_rows}
    dev_raw = {i: v for i, v in load_cache("dev").items() if i in dev_preds}
    prior = fit_position_prior(variant(dev_raw, orders, None).values(), K) if use_prior else None
    dev_verdicts = variant(dev_raw, orders, prior)
    if METHOD == "channel":
        dev_verdicts = channel_variant(dev_verdicts, dev_preds, k, threshold)
    dev_ids = [r[0] for r in dev_rows]
    fit = fit_combination([dev_preds[i] for i in dev_ids], [dev_verdicts.get(i) for i in dev_ids],
                          [dev_gold[i] for i in dev_ids])
    # The fixed test sample (ids committed), then the whole test half for the coder alone.
    test_rows = project.conn.execute("SELECT id, text, code FROM real_texts WHERE split = 'test' ORDER BY id").fetchall()
    if test_ids_path().exists():
        wanted = set(json.loads(test_ids_path().read_text(encoding="utf-8"))["ids"])
    elif TEST_N != 200:
        wanted = set(larger_test_ids([r[0] for r in test_rows], TEST_N, args.seed))
        test_ids_path().write_text(json.dumps({"seed": args.seed, "n": len(wanted), "holds": test_ids_path(200).name,
                                               "ids": sorted(wanted)}) + "\n", encoding="utf-8")
    else:
        wanted = set(sorted(random.Random(f"judge-test:{args.seed}").sample([r[0] for r in test_rows], args.n)))
        test_ids_path().write_text(json.dumps({"seed": args.seed, "n": len(wanted), "ids": sorted(wanted)}) + "\n",
                            encoding="utf-8")
    all_preds = predict(project, coder, [t for _, t, _ in test_rows], max(k, 5))
    full_t1, full_t5 = top(all_preds, [c for _, _, c in test_rows])
    sample = [(r, p) for r, p in zip(test_rows, all_preds) if r[0] in wanted]
    rows_s = [r for r, _ in sample]
    preds = {r[0]: p for r, p in sample}
    gold = {r[0]: r[2] for r in rows_s}
    backend = open_backend(judge_settings(args.threads))
    kind = f"test-orders{orders}" + (f"-k{k}-t{threshold:g}" if (k, threshold) != (5, 0.5) else "")
    raw, s_per = judge_all(project, backend, rows_s, [p for _, p in sample], kind, orders, k, threshold)
    backend.close()
    verdicts = {i: recalibrate(v, prior) for i, v in raw.items() if i in preds}
    ids = [r[0] for r in rows_s]
    combined = [combine(preds[i], verdicts.get(i), fit.combination) for i in ids]
    c1, c5 = top([preds[i] for i in ids], [gold[i] for i in ids])
    j1, j5 = top(combined, [gold[i] for i in ids])
    unsure = [i for i in ids if i in verdicts]
    alone = sum(verdicts[i].best[0] == gold[i] for i in unsure) / max(1, len(unsure))
    by_id = {r[0]: r[1] for r in rows_s}
    analysis = failure_analysis(project, ids, by_id, preds, verdicts, dict(zip(ids, combined)), gold)
    return {"analysis": analysis, "variant": dev["chosen"], "k": k, "threshold": threshold, "combination": fit.combination.to_dict(),
            "prior": [round(p, 4) for p in prior] if prior else None,
            "n": len(ids), "judged": len(unsure), "share_judged": round(len(unsure) / len(ids), 4),
            "seconds_per_judged_text": s_per,
            "coder_on_sample": {"top1": round(c1, 4), "top5": round(c5, 4)},
            "coder_plus_judge_on_sample": {"top1": round(j1, 4), "top5": round(j5, 4)},
            "judge_alone_top1_on_judged": round(alone, 4),
            "coder_full_test": {"top1": round(full_t1, 4), "top5": round(full_t5, 4), "n": len(test_rows)}}


def failure_analysis(project: Project, ids, texts, preds, verdicts, combined, gold) -> dict:
    """Where the judged arm fails on the test sample (reported after the single read, never used to choose):
    what happened to the judged texts, what the combination moved, the commonest confusions and an example
    of what the judge read."""
    titles = dict(project.conn.execute("SELECT code, title FROM codes"))
    judged = [i for i in ids if i in verdicts]
    present = [i for i in judged if gold[i] in verdicts[i].codes]
    outcome = Counter()
    for i in judged:
        if gold[i] not in verdicts[i].codes:
            outcome["right code not among the candidates"] += 1
        elif combined[i][0][0] == gold[i]:
            outcome["among them, coder + judge right"] += 1
        else:
            outcome["among them, coder + judge wrong"] += 1
    moved = Counter()
    for i in ids:
        before, after = preds[i][0][0], combined[i][0][0]
        if before != after:
            moved["wrong -> right" if after == gold[i] else "right -> wrong" if before == gold[i]
                  else "wrong -> wrong"] += 1
    errors = [(gold[i], combined[i][0][0]) for i in ids if combined[i][0][0] != gold[i]]
    same_class_group = sum(g[:4] == p[:4] for g, p in errors)   # NACE classes 10.71 and 10.72: group 10.7
    pairs = Counter(errors).most_common(8)
    example_id = next((i for i in present if verdicts[i].best[0] != gold[i]), present[0] if present else None)
    example = None
    if example_id is not None:
        verdict = verdicts[example_id]
        coder_probs = dict(preds[example_id])
        example = {"text": texts[example_id], "gold": gold[example_id],
                   "candidates": [{"code": c, "title": titles.get(c, ""), "coder": round(coder_probs.get(c, 0.0), 3),
                                   "judge": round(p, 3)} for c, p in zip(verdict.codes, verdict.probs)],
                   "card": channel_card(candidates_for(project, [verdict.codes[0]])[0],
                                        JudgeOptions(method=METHOD, classification=SETUPS[BENCH][2],
                                                     max_lines=METHODS[METHOD][1])) if METHOD == "channel" else None}
    return {"judged": len(judged), "outcomes_of_judged": dict(outcome),
            "judge_alone_when_right_code_present": round(
                sum(verdicts[i].best[0] == gold[i] for i in present) / max(1, len(present)), 4),
            "combination_moved_top1": dict(moved), "errors": len(errors),
            "errors_within_the_same_group": same_class_group,
            "confused_pairs": [{"gold": g, "gold_title": titles.get(g, ""), "predicted": p,
                                "predicted_title": titles.get(p, ""), "count": n} for (g, p), n in pairs],
            "example": example}


def analysis_lines(analysis: dict) -> list[str]:
    if not analysis:
        return []
    lines = ["### Where it fails (the same sample, reported after the single read; nothing was chosen from it)", "",
             f"Judged texts: {analysis['judged']}: " + "; ".join(f"{k}: {v}" for k, v in analysis["outcomes_of_judged"].items())
             + f". The judge alone picks the right code for {analysis['judge_alone_when_right_code_present']:.1%} of the "
             "judged texts whose right code is among its candidates.",
             "", "The combination moved the coder's first code: "
             + (", ".join(f"{k} {v}" for k, v in analysis["combination_moved_top1"].items()) or "never") + ". "
             f"Of the {analysis['errors']} texts still wrong, {analysis['errors_within_the_same_group']} are "
             "confused with a code of the same NACE group (first three digits).", "",
             "| right code | chosen instead | texts |", "|---|---|---|"]
    lines += [f"| {p['gold']} {p['gold_title']} | {p['predicted']} {p['predicted_title']} | {p['count']} |"
              for p in analysis["confused_pairs"]]
    example = analysis.get("example")
    if example:
        lines += ["", f"An example the judge got wrong with the right code among its candidates: “{example['text']}” "
                  f"(right code {example['gold']}):", "", "| candidate | coder | judge |", "|---|---|---|"]
        lines += [f"| {c['code']} {c['title']} | {c['coder']:.3f} | {c['judge']:.3f} |" for c in example["candidates"]]
        if example.get("card"):
            lines += ["", "What the channel judge reads before the text (the first candidate's card); it scores "
                      "log P(“ " + example["text"] + "” | card):", "", "```", example["card"], "```"]
    return lines + [""]


def write(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"judge-{stem()}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    dev = result["dev"]
    lines = [f"# LLM judge over the {CODERS[CODER][1]} coder, {SETUPS[BENCH][3]}", "",
             "Commands: " + "; ".join(f"`{c}`" for c in result["commands"]), "",
             f"Created {result['created']}. {result['machine']['note']}.", "",
             f"Coder: {result['coder']['name']} (model sha256 `{result['coder']['sha256'][:12]}`). Judge: "
             f"{result['judge']['model']} (`{result['judge']['sha256'][:12]}`), k = {K} candidates, only texts with "
             f"coder probability < {THRESHOLD}, {result['judge']['threads']} thread(s), method "
             f"{result['judge'].get('method', 'letters')}.", "",
             f"## Development probe: {dev['n']} seeded real-train texts (never test"
             + ("; from the coder's validation carve, never its training texts" if CODER == "real+notes" else "")
             + ")", "",
             f"Coder alone: top-1 {dev['coder_top1']:.1%}, top-5 {dev['coder_top5']:.1%}. Judged: {dev['unsure']} "
             f"({dev['share_judged']:.0%}); right code among the candidates of judged texts: "
             f"{dev['gold_among_candidates_when_judged']:.0%}; "
             + (f"{dev['seconds_per_judged_text']:.1f} s per judged text"
                + (" (both orders)." if METHOD == "letters" else " (cards evaluated on first use, then cached).")
                if dev['seconds_per_judged_text']
                else "verdicts from the cache."), "",
             "| variant | judge alone (judged texts) | judge alone, right code present | coder + judge top-1 (cross-fitted) | top-5 | first-order answers by position |",
             "|---|---|---|---|---|---|"]
    for name, v in dev["variants"].items():
        c = v["combined_cross_fitted"]
        label = name + (f", {v['judged']} judged, right code among them {v['gold_among_candidates_when_judged']:.0%}"
                        if "judged" in v else "")
        lines.append(f"| {label} | {v['judge_alone_top1_on_judged']:.1%} | {v['judge_alone_top1_when_gold_present']:.1%} | "
                     f"{c['top1']:.1%} | {c['top5']:.1%} | {v['first_order_argmax_positions']} |")
    lines += ["", f"Chosen on dev by {dev.get('chosen_by', 'top-1')}: {dev['chosen']} (top-1 gain over the coder on "
              f"dev: {dev['gain_on_dev'] * 100:+.1f} points).", ""]
    test = result.get("test")
    if test:
        lines += [f"## Test half, read once: fixed sample of {test['n']} test ids (`{test_ids_path().relative_to(ROOT)}`)",
                  "",
                  "| arm | top-1 | top-5 | n |", "|---|---|---|---|",
                  f"| {CODERS[CODER][1]}, whole test half | {test['coder_full_test']['top1']:.1%} | "
                  f"{test['coder_full_test']['top5']:.1%} | {test['coder_full_test']['n']} |",
                  f"| {CODERS[CODER][1]}, same sample | {test['coder_on_sample']['top1']:.1%} | "
                  f"{test['coder_on_sample']['top5']:.1%} | {test['n']} |",
                  f"| {CODERS[CODER][1]} + judge, same sample | {test['coder_plus_judge_on_sample']['top1']:.1%} | "
                  f"{test['coder_plus_judge_on_sample']['top5']:.1%} | {test['n']} |", "",
                  f"Judged {test['judged']} of {test['n']} ({test['share_judged']:.0%}); judge alone on them "
                  f"{test['judge_alone_top1_on_judged']:.1%}; "
                  + (f"{test['seconds_per_judged_text']:.1f} s per judged text." if test['seconds_per_judged_text'] else "")
                  + f" Combination fitted on dev: {test['combination']}.", ""] + analysis_lines(test.get("analysis"))
    else:
        lines += ["The test half was not read" + (": no gain on dev." if dev["gain_on_dev"] <= 0 else "."), ""]
    (RESULTS / f"judge-{stem()}.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.judge", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["dev", "test"])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--benchmark", choices=sorted(SETUPS), default="nace-uksic")
    parser.add_argument("--coder", choices=sorted(CODERS), default="notes-knn",
                        help="the coder the judge re-ranks: the notes-only kNN (zero real), or the embedding coder "
                             "trained on real-train + notes (dev drawn from its real validation carve)")
    parser.add_argument("--method", choices=sorted(METHODS), default="letters",
                        help="letters: the LLM picks a lettered candidate (two orders); channel: log P(text | card) "
                             "per candidate, cards cached (its files end in -channel)")
    parser.add_argument("--k", type=int, default=5,
                        help="candidates shown to the judge (the channel judge's dev also scores k = 5 and 8 below it)")
    parser.add_argument("--test-n", type=int, default=200,
                        help="test ids judged: the committed 200, or a larger fixed sample that holds them "
                             "(its own ids and result files, the dev step of the 200's result file)")
    parser.add_argument("--choose", choices=["top1", "sum"], default="top1",
                        help="the dev step chooses the variant by cross-fitted top-1, or by top-1 + top-5")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="judge texts whose coder probability is below this (dev also scores 0.5 and 0.8 below it)")
    args = parser.parse_args(argv)
    if args.coder in ("prototypes", *ENSEMBLES) and args.benchmark != "nace-uksic":
        parser.error(f"--coder {args.coder} is for NACE (its synthetic samples are NACE's)")
    global BENCH, CODER, METHOD, K, THRESHOLD, TEST_N
    BENCH, CODER, METHOD, K, THRESHOLD = args.benchmark, args.coder, args.method, args.k, args.threshold
    TEST_N = args.test_n
    if TEST_N != 200 and (args.step != "test" or TEST_N < 200):
        parser.error("--test-n is for the test step, with 200 or more ids")
    if K != 5 and METHOD != "channel":
        parser.error("--k other than 5 is for the channel judge")
    path = RESULTS / f"judge-{stem()}.json"
    result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"commands": []}
    base = RESULTS / f"judge-{stem(with_test_n=False)}.json"
    if TEST_N != 200 and "dev" not in result and base.exists():
        # the larger sample is read with the settings the dev step chose (kept in the 200's file)
        earlier = json.loads(base.read_text(encoding="utf-8"))
        result.update({k: earlier[k] for k in ("dev", "coder", "judge") if k in earlier})
        result["commands"] = [c for c in earlier.get("commands", []) if " dev " in f" {c} "]
    command = command_line("bench.judge", argv)
    result["commands"] = [c for c in result.get("commands", []) if c != command] + [command]
    result.update(created=now(), machine=machine())
    if args.step == "dev":
        result.update(cmd_dev(args))
        result.pop("test", None)
    else:
        if "dev" not in result:
            raise SystemExit("run the dev step first")
        if result["dev"]["gain_on_dev"] <= 0 and not test_ids_path().exists():
            print("no gain on dev: the test half stays unread", file=sys.stderr)
        else:
            earlier = result.get("test") or {}
            result["test"] = cmd_test(args, result)
            if result["test"]["seconds_per_judged_text"] is None and earlier.get("seconds_per_judged_text"):
                # every verdict came from the cache: keep what they cost when they were made
                result["test"]["seconds_per_judged_text"] = earlier["seconds_per_judged_text"]
    write(result)
    print(f"wrote {path} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
