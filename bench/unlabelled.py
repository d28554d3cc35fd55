"""Arm `unlabelled-real, no judge` on all of NACE: the real-train half imported without its codes, labelled
by the zero-real coder alone (self-training), then a coder trained on notes + those pseudo-labels.

    PYTHONPATH=. python -m bench.unlabelled                       # the product's rule: 90 % precision
    PYTHONPATH=. python -m bench.unlabelled --precision 0.7 --threshold 0   # more variants, one file
    STATCODER_DATA_DIR=... PYTHONPATH=. python -m bench.unlabelled --backlog 1000 --judge --precision 0.7
        # a seeded backlog of 1,000 of the real-train texts, labelled with and without the (channel) judge

    STATCODER_DATA_DIR=... PYTHONPATH=. python -m bench.unlabelled --labeller ensemble --grams 4 --redirected \
        --coverage --heads 20 --judge --threshold 0 [--dev]
        # the best zero-real coder labels the whole backlog, with and without the judge over its unsure texts;
        # the verdicts are kept in bench/results/unlabelled-judge-verdicts-nace-full.jsonl.gz (hours on 2
        # cores: a run stopped on one machine goes on from there on the next)

    PYTHONPATH=. python -m bench.unlabelled --benchmark naics --labeller notes-ensemble --precision 0.9 --threshold 0
        # NAICS 2017 (its index as the real texts): the product's ensemble of four trained on the notes labels

Variants go into one result file (bench/results/unlabelled-nace-full.*), one row pair each; NAICS files are
unlabelled-naics-full*, and the notes-ensemble labeller's end in -notes-ensemble.

A realistic office: a backlog of uncoded answers, no coded ones. The work project is a copy of
bench/projects/nace-full.statcoder whose real-train texts are deleted as coded texts and imported again as
uncoded ones (`statcoder import-uncoded`); the test half stays for scoring only. The labelling coder is the
notes-only embedding kNN; the pseudo-label threshold is the product's: chosen on held-out synthetic
samples (no real text) for 90 % precision. The judged version of this arm (`unlabelled-real`) over the whole
real-train half was not run: about 60 % of 7,887 texts below the threshold at about 13 s each is some 17
hours on this machine. `--backlog N --judge` runs both versions on a seeded backlog of N texts instead.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (BENCHMARKS, backup_copy, command_line, load_verdicts, machine, now,  # noqa: E402
                          save_verdicts)
from engine.classification import import_builtin  # noqa: E402
from engine.coders.train import train_coder  # noqa: E402
from engine.realdata.importing import import_preset  # noqa: E402
from engine.assist.pseudo import label_uncoded  # noqa: E402
from engine.coders.data import DataMix  # noqa: E402
from engine.coders.embedding.cache import embed_cached  # noqa: E402
from engine.coders.embedding.training import EmbeddingTrainOptions, train_embedding  # noqa: E402
from engine.coders.registry import load_coder  # noqa: E402
from engine.realdata.uncoded import import_uncoded_texts  # noqa: E402
from engine.store.project import Project  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
SOURCE = ROOT / "bench" / "projects" / "nace-full.statcoder"
# the judge's verdicts over the ensemble's backlog (--labeller ensemble --judge), kept across machines
VERDICTS = RESULTS / "unlabelled-judge-verdicts-nace-full.jsonl.gz"


def top(preds, gold) -> dict:
    n = max(1, len(gold))
    return {"top1": round(sum(p[0][0] == g for p, g in zip(preds, gold)) / n, 4),
            "top5": round(sum(g in [c for c, _ in p[:5]] for p, g in zip(preds, gold)) / n, 4), "n": len(gold)}


def labelling_facts(project: Project, result, truth: dict[str, str], uncoded: int) -> dict:
    """What one labelling did, and how right its labels are against the withheld real codes (read after the
    fact, for the report only)."""
    rows = project.conn.execute("SELECT u.text, p.code, p.status FROM pseudo_labels p JOIN uncoded_texts u"
                                " ON u.id = p.uncoded_id").fetchall()
    pseudo = [(t, c) for t, c, st in rows if st == "pseudo"]
    return {"uncoded": uncoded, "labelled": result.labelled, "pseudo": result.pseudo,
            "threshold": result.threshold, "threshold_from": result.threshold_from,
            "label_s": round(result.seconds, 1), "judged": result.judged,
            "pseudo_label_precision": round(sum(truth.get(t) == c for t, c in pseudo) / max(1, len(pseudo)), 4),
            "all_labels_precision": round(sum(truth.get(t) == c for t, c, _ in rows) / max(1, len(rows)), 4)}


def judge_changes(project: Project, truth: dict[str, str]) -> dict:
    """Where the judge moved the labels of the texts it judged, against the withheld real codes (report only)."""
    rows = project.conn.execute("SELECT u.text, p.code, p.coder_code FROM pseudo_labels p JOIN uncoded_texts u"
                                " ON u.id = p.uncoded_id WHERE p.judged = 1").fetchall()
    rows = [(truth[t], code, coder) for t, code, coder in rows if t in truth]
    n = max(1, len(rows))
    changed = [(gold, code, coder) for gold, code, coder in rows if code != coder]
    return {"judged": len(rows), "coder_right": round(sum(g == c for g, _, c in rows) / n, 4),
            "combined_right": round(sum(g == c for g, c, _ in rows) / n, 4), "changed": len(changed),
            "changed_to_right": sum(g == c for g, c, _ in changed),
            "changed_from_right": sum(g == c for g, _, c in changed)}


def variants_of(args) -> list[tuple[str, float]]:
    """The labelling variants asked for: ("precision", p) and ("threshold", t), the product's 90 % rule if none."""
    variants = [("precision", p) for p in (args.precision or [])] + [("threshold", t) for t in (args.threshold or [])]
    return variants or [("precision", 0.9)]


def fresh_work_path(stem: str) -> Path:
    """bench/work/STEM.statcoder with nothing left of an earlier run (its WAL files and models folder)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{stem}.statcoder"
    for extra in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(path.stem + ".models"), ignore_errors=True)
    return path


def make_backlog(project: Project, texts: list[str]):
    """The project's real-train texts deleted as coded texts, and `texts` imported as uncoded ones (through
    a CSV with only a text column, as an office would); returns the import's result."""
    csv_path = WORK / "unlabelled-real-train.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["answer"])
        writer.writerows([t] for t in texts)
    with project.transaction() as conn:
        conn.execute("DELETE FROM real_texts WHERE split = 'train'")
    return import_uncoded_texts(project, csv_path, text_column="answer")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.unlabelled", description=__doc__.splitlines()[0])
    parser.add_argument("--precision", type=float, action="append",
                        help="Target precision of the pseudo-labels on held-out synthetic samples (repeatable).")
    parser.add_argument("--threshold", type=float, action="append", help="A fixed pseudo-label threshold (repeatable).")
    parser.add_argument("--backlog", type=int, help="Only a seeded sample of this many real-train texts is the "
                        "backlog (the rest are dropped); files end in -backlogN.")
    parser.add_argument("--judge", action="store_true", help="Also label with the labeller + the default LLM as "
                        "judge (channel method), fitted on held-out synthetic samples (no real text).")
    parser.add_argument("--judge-fit", type=int, default=60, help="Held-out samples judged to fit the judge.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dev", action="store_true", help="with --labeller ensemble: a development run that never "
                        "reads the test half: half of real-train (a seeded hash) is the uncoded backlog, the other "
                        "half scores the coders (files end in -ensemble-dev)")
    parser.add_argument("--rounds", type=int, default=1, help="with --labeller ensemble: label, retrain, and label "
                        "again with the retrained coder, this many times (files end in -roundsN)")
    parser.add_argument("--grams", type=int, default=0, help="with --labeller ensemble: the lexical member's terms "
                        "are words and their character N-grams (0: words only, as first measured; files end in "
                        "-ensemble-gramsN)")
    parser.add_argument("--redirected", action="store_true", help="the notes arm also holds the excluded activities "
                        "other codes' notes send to each code (DataMix.redirected_notes, the product's default); "
                        "without it, the notes as the earlier files were measured (files end in -redirected)")
    parser.add_argument("--coverage", action="store_true", help="with --labeller ensemble: the lexical member with "
                        "the product's coverage and prior terms (files end in -coverage)")
    parser.add_argument("--heads", type=float, default=0.0, help="with --labeller ensemble: the ensembles (the "
                        "labeller and the retrained one) add the title-heads term at this weight (engine.coders.heads; "
                        "run bench.ensemble_zero_real dev with the same --heads first)")
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="nace-uksic",
                        help="with --labeller notes-knn or notes-ensemble: the classification and its real texts")
    parser.add_argument("--labeller", choices=["notes-knn", "notes-ensemble", "ensemble"], default="notes-knn",
                        help="notes-knn: the notes-only kNN labels, a coder on notes + pseudo-labels is trained; "
                             "notes-ensemble: the product's ensemble of four trained on the notes only labels, and "
                             "the same ensemble is retrained on notes + pseudo-labels; "
                             "ensemble: the best zero-real coder (the four-member log ensemble on notes + 24 "
                             "synthetic samples per class) labels, and the same ensemble is retrained on notes + "
                             "synthetic + pseudo-labels (no judge; files end in -ensemble)")
    args = parser.parse_args(argv)
    if args.labeller == "ensemble":
        if args.backlog or args.benchmark != "nace-uksic":
            parser.error("--labeller ensemble runs all of NACE's backlog")
        return run_ensemble(args, argv)
    if args.labeller == "notes-ensemble" and args.judge:
        parser.error("--labeller notes-ensemble runs without the judge")
    if args.coverage and args.labeller != "ensemble":
        parser.error("--coverage is for --labeller ensemble")
    if args.redirected and args.labeller == "notes-knn":
        parser.error("--redirected is for --labeller notes-ensemble or ensemble")
    variants = variants_of(args)
    ensemble = args.labeller == "notes-ensemble"
    suffix = ((f"-backlog{args.backlog}" if args.backlog else "") + ("-judge" if args.judge else "")
              + ("-notes-ensemble" if ensemble else "") + ("-redirected" if args.redirected else ""))
    stem = ("unlabelled-nace-full" if args.benchmark == "nace-uksic" else "unlabelled-naics-full") + suffix
    path = fresh_work_path(stem)
    if args.benchmark == "nace-uksic":
        shutil.copy(SOURCE, path)
        project = Project.open(path)
    else:
        project = Project.create(path)
        classification, real = BENCHMARKS[args.benchmark]
        import_builtin(project, classification)
        import_preset(project, real)
    started = time.perf_counter()
    # the withheld codes, read before they are deleted: they measure the labels afterwards (report only)
    truth = dict(project.conn.execute("SELECT text, code FROM real_texts WHERE split = 'train'"))
    train = [t for (t,) in project.conn.execute("SELECT text FROM real_texts WHERE split = 'train' ORDER BY id")]
    if args.backlog:
        import random

        train = sorted(random.Random(f"unlabelled-backlog:{args.backlog}").sample(train, args.backlog))
    imported = make_backlog(project, train)
    test = project.conn.execute("SELECT text, code FROM real_texts WHERE split = 'test' ORDER BY id").fetchall()
    gold = [c for _, c in test]
    arms: dict = {}
    notes = DataMix(notes=1, validation_share=0.1, validation_from="training", redirected_notes=args.redirected)
    if ensemble:
        labeller = train_coder(project, notes, kind="ensemble", name="labeller: notes ensemble", make_default=True)
        coder, _ = load_coder(project, labeller.model_id)
        arms["zero-real ensemble of four on the notes (the labeller)"] = top(
            coder.predict_many([t for t, _ in test], 5), gold)
    else:
        labeller = train_embedding(project, notes, EmbeddingTrainOptions(mode="knn", name="labeller: notes knn",
                                                                         make_default=True))
        coder, _ = load_coder(project, labeller.model_id)
        test_x = embed_cached(project, coder.embedder, [t for t, _ in test])
        arms["zero-real notes kNN (the labeller)"] = top(coder.predict_vectors(test_x, 5), gold)
    labelling: dict = {}
    judges: list = [None]
    judge_facts: dict = {}
    if args.judge:
        from engine.assist.judge import Judge, fit_judge, judge_backend_settings
        from engine.llm.backends import open_backend

        backend = open_backend(judge_backend_settings(threads=args.threads))
        fit_started = time.perf_counter()
        precision = next((v for k, v in variants if k == "precision"), 0.9)
        config = fit_judge(project, backend, model=labeller.model_id, limit=args.judge_fit, label_precision=precision)
        judge_facts = {"method": config.method, "model_sha256": backend.model_sha256, "fit": config.fit,
                       "combination": config.combination.to_dict(), "label_threshold": config.label_threshold,
                       "fit_s": round(time.perf_counter() - fit_started, 1)}
        judges.append(Judge(project, backend, model=labeller.model_id))
    for (kind, value), judge in [(v, j) for j in judges for v in variants]:
        name = f"{kind} {value}" + (", judge" if judge is not None else "")
        result = label_uncoded(project, model=labeller.model_id, judge=judge, review=0, relabel=True,
                               **({"precision": value} if kind == "precision" else {"threshold": value}))
        labelling[name] = labelling_facts(project, result, truth, imported.imported)
        if not result.pseudo:
            continue
        arm = "unlabelled-real" + ("" if judge is not None else ", no judge")
        if ensemble:
            trained = train_coder(project, DataMix(notes=1, pseudo=1, validation_share=0.1, validation_from="training",
                                                   redirected_notes=args.redirected),
                                  kind="ensemble", name=f"notes + pseudo ({name})", make_default=False)
            model, _ = load_coder(project, trained.model_id)
            arms[f"{arm} ({name}): notes + pseudo-labels, ensemble of four"] = {
                **top(model.predict_many([t for t, _ in test], 5), gold), "n_train": trained.composition["train_lines"],
                "weights": trained.params["weights"], "sources": trained.composition["counts"]}
            print(f"[{now()}] {name}: {arms[list(arms)[-1]]['top1']}", file=sys.stderr, flush=True)
            continue
        for mode in ("knn", "lr"):
            trained = train_embedding(project, DataMix(notes=1, pseudo=1, validation_share=0.1,
                                                       validation_from="training", redirected_notes=False),
                                      EmbeddingTrainOptions(mode=mode, name=f"notes + pseudo {mode}", make_default=False))
            model, _ = load_coder(project, trained.model_id)
            arms[f"{arm} ({name}): notes + pseudo-labels, embedding-{mode}"] = {
                **top(model.predict_vectors(test_x, 5), gold), "n_train": trained.composition["train_lines"],
                "sources": trained.composition["counts"]}
    report = {"benchmark": args.benchmark, "labeller": args.labeller, "subset": None, "command": command_line("bench.unlabelled", argv),
              "created": now(), "machine": machine(), "backlog": args.backlog, "judge": judge_facts,
              "labelling": labelling, "arms": arms,
              "seconds": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    title = "with and without the judge" if args.judge else "self-training without the judge"
    where = "all of NACE (UK SIC index)" if args.benchmark == "nace-uksic" else "all of NAICS 2017 (NAICS index)"
    lines = [f"# Unlabelled real texts, {where}: {title}", "",
             f"`{report['command']}`", "", f"Created {report['created']}. {report['machine']['note']}.", "",
             f"The {imported.imported} real-train texts" + (f" of a seeded backlog of {args.backlog}" if args.backlog else "")
             + " imported without codes and labelled by the "
             + ("product's ensemble of four (kNN, embedding regression, fastText, lexical; zero-real weights) "
                "trained on the notes only, then retrained on the notes + the pseudo-labels" if ensemble
                else "notes-only kNN coder")
             + (f" (and, in the rows marked judge, by it + the LLM judge, {judge_facts['method']} method, fitted on "
                f"{judge_facts['fit'].get('judged')} of {judge_facts['fit'].get('validation_texts')} "
                f"{judge_facts['fit'].get('validation')} in {judge_facts['fit_s']} s: combination "
                f"{judge_facts['combination']}, pseudo-label threshold {judge_facts['label_threshold']})"
                if args.judge else "")
             + "; the withheld real codes measure the labels afterwards (report only).", "",
             "| labelling | threshold | pseudo-labels | their precision | precision of all labels | judged | seconds |",
             "|---|---|---|---|---|---|---|",
             *[f"| {n} | {l['threshold']} ({l['threshold_from']}) | {l['pseudo']} | {l['pseudo_label_precision']:.1%} | "
               f"{l['all_labels_precision']:.1%} | {l.get('judged', 0)} | {l['label_s']} |" for n, l in labelling.items()], "",
             "| arm | top-1 | top-5 | n_test |", "|---|---|---|---|"]
    for name, arm in arms.items():
        lines.append(f"| {name} | {arm['top1']:.1%} | {arm['top5']:.1%} | {arm['n']} |")
    if not args.judge:
        lines += ["", "The judged arm (`unlabelled-real`: coder + judge) was not run here: about 60 % of the texts fall "
                  "below the threshold and the judge takes about 13 s per text on this machine (some 17 hours).", ""]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


def run_ensemble(args, argv) -> int:
    """`unlabelled-real, no judge` with the best zero-real coder as the labeller (see --labeller)."""
    import bench.ensemble_zero_real as zero_real
    from bench.common import load_result

    zero_real.use_lexical(args.grams)
    if args.redirected:
        zero_real.use_redirected()
    if args.coverage:
        zero_real.use_coverage()
    if args.heads:
        zero_real.use_heads(args.heads)
    chosen = load_result(zero_real.DEV)
    if chosen is None:
        raise SystemExit("run python -m bench.ensemble_zero_real dev --lexical"
                         + (f" --grams {args.grams}" if args.grams else "")
                         + (" --redirected" if args.redirected else "") + (" --coverage" if args.coverage else "")
                         + (f" --heads {args.heads:g}" if args.heads else "") + " first")
    variants = variants_of(args)
    suffix = ("-ensemble" + (f"-grams{args.grams}" if args.grams else "") + ("-redirected" if args.redirected else "")
              + ("-coverage" if args.coverage else "") + ("-heads" if args.heads else "")
              + ("-judge" if args.judge else "")
              + ("-dev" if args.dev else "") + (f"-rounds{args.rounds}" if args.rounds > 1 else ""))
    path = fresh_work_path(f"unlabelled-nace-full{suffix}")
    # The ensemble bench's work project when there (its members trained, its embeddings cached; its model
    # files stay where they are), else the committed project it is copied from.
    origin = zero_real.WORK if zero_real.WORK.exists() else zero_real.SOURCE
    backup_copy(origin, path)
    # a project loads only models in its own folder: bring the trained members along
    folder = origin.with_name(origin.stem + ".models")
    if folder.is_dir():
        shutil.copytree(folder, path.with_name(path.stem + ".models"))
        target = sqlite3.connect(path)
        try:
            target.execute("UPDATE models SET path = REPLACE(path, ?, ?)", (folder.name + "/", path.stem + ".models/"))
            target.commit()
        finally:
            target.close()
    project = Project.open(path)
    started = time.perf_counter()
    ids = zero_real.members(project)
    labeller = zero_real.ensemble(project, ids, chosen["chosen"])
    truth = dict(project.conn.execute("SELECT text, code FROM real_texts WHERE split = 'train'").fetchall())
    scored = None
    if args.dev:
        # dev: half of real-train is the backlog, the other half (its codes kept here, not in the project) scores
        from engine.coders.data import in_validation
        from engine.text import normalise_key

        halves = {t: in_validation("unlabelled-dev:" + normalise_key(t), 0.5) for t in truth}
        scored = sorted((t, c) for t, c in truth.items() if halves[t])
        truth = {t: c for t, c in truth.items() if not halves[t]}
    imported = make_backlog(project, sorted(truth))
    test = scored if scored is not None else zero_real.real_rows(project, "test")
    arms = {"zero-real log ensemble of four (the labeller)": zero_real.score_coder(project, labeller, test)}
    labelling: dict = {}
    judges: list = [None]
    judge_facts: dict = {}
    backend = None
    try:
        if args.judge:
            backend, judge, judge_facts = open_judge(project, labeller, args, variants)
            judges.append(judge)
        for (kind, value), judge in [(v, j) for j in judges for v in variants]:
            label_arms(project, args, kind, value, judge, labeller, truth, imported, test, labelling, arms)
    finally:
        if args.judge:      # also when stopped: the verdicts so far go to the committed file
            print(f"\n[{now()}] {save_verdicts(project, VERDICTS)} verdicts saved to {VERDICTS.name}", file=sys.stderr, flush=True)
        if backend is not None:
            backend.close()
    if judge_facts:
        judge_facts["stored_verdicts"] = project.conn.execute("SELECT COUNT(*) FROM judge_verdicts").fetchone()[0]
    report = {"benchmark": "nace-uksic", "command": command_line("bench.unlabelled", argv), "created": now(),
              "machine": machine(), "labeller": "ensemble", "labelling": labelling, "arms": arms,
              "judge": judge_facts, "seconds": round(time.perf_counter() - started, 1)}
    write_ensemble_report(args, suffix, report, imported, test)
    return 0


def open_judge(project: Project, labeller: int, args, variants):
    """The default LLM as judge over the ensemble, fitted as the product fits it: on held-out synthetic
    samples, no real text. The verdicts a run on another machine saved (VERDICTS) are loaded first."""
    from engine.assist.judge import Judge, fit_judge, judge_backend_settings
    from engine.llm.backends import open_backend

    print(f"[{now()}] {load_verdicts(project, VERDICTS)} verdicts loaded from {VERDICTS.name}", file=sys.stderr, flush=True)
    backend = open_backend(judge_backend_settings(threads=args.threads))
    # the held-out samples the fit judges: their verdicts are saved too (the fit takes minutes)
    fit_started = time.perf_counter()
    precision = next((v for k, v in variants if k == "precision"), 0.9)
    config = fit_judge(project, backend, model=labeller, limit=args.judge_fit, label_precision=precision)
    facts = {"method": config.method, "k": config.k, "threshold": config.threshold,
             "model_sha256": backend.model_sha256, "fit": config.fit, "combination": config.combination.to_dict(),
             "label_threshold": config.label_threshold, "fit_s": round(time.perf_counter() - fit_started, 1)}
    print(f"[{now()}] judge fitted: {facts}", file=sys.stderr, flush=True)
    return backend, Judge(project, backend, model=labeller), facts


def saving_progress(project: Project, every_s: float = 300.0):
    """A progress printer that also saves the verdicts every few minutes (a session may end mid-run)."""
    from engine.cli.common import progress_printer

    show, last = progress_printer(), [time.monotonic()]

    def progress(info) -> None:
        show(info)
        if time.monotonic() - last[0] > every_s:
            save_verdicts(project, VERDICTS)
            last[0] = time.monotonic()

    return progress


def label_arms(project: Project, args, kind: str, value: float, judge, labeller: int, truth, imported, test,
               labelling: dict, arms: dict) -> None:
    """One labelling variant (with or without the judge), its rounds, and each round's retrained four."""
    import bench.ensemble_zero_real as zero_real

    current = labeller
    rounds = 1 if judge is not None else args.rounds    # the judge is fitted over the first labeller only
    for round_no in range(1, rounds + 1):
        name = (f"{kind} {value}" + (", judge" if judge is not None else "")
                + (f", round {round_no}" if args.rounds > 1 else ""))
        result = label_uncoded(project, model=current, judge=judge, review=0, relabel=True,
                               progress=saving_progress(project) if judge is not None else None,
                               **({"precision": value} if kind == "precision" else {"threshold": value}))
        labelling[name] = labelling_facts(project, result, truth, imported.imported)
        if judge is not None:
            labelling[name].update(reused=result.reused, changes=judge_changes(project, truth))
        print(f"[{now()}] {name}: {labelling[name]}", file=sys.stderr, flush=True)
        if not result.pseudo:
            break
        mix = DataMix(notes=1, synthetic=1, pseudo=1, run_ids=zero_real.RUNS, validation_share=0.1,
                      validation_from="training", redirected_notes=zero_real.REDIRECTED)
        trained = train_coder(project, mix, kind="ensemble", name=f"notes + synthetic + pseudo ({name})",
                              make_default=False, lexical=zero_real.lexical_options(), heads=zero_real.HEADS)
        arm = "unlabelled-real" + ("" if judge is not None else ", no judge")
        arms[f"{arm} ({name}): notes + synthetic + pseudo-labels, log ensemble of four"] = {
            **zero_real.score_coder(project, trained.model_id, test), "weights": trained.params["weights"],
            "weights_from": trained.params["weights_from"], "n_train": trained.composition.get("train_lines"),
            "sources": trained.composition.get("counts")}
        print(f"[{now()}] {name}: {arms[list(arms)[-1]]['top1']}", file=sys.stderr, flush=True)
        current = trained.model_id     # the next round's labeller


def write_ensemble_report(args, suffix: str, report: dict, imported, test) -> None:
    (RESULTS / f"unlabelled-nace-full{suffix}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    labelling, arms, judge = report["labelling"], report["arms"], report["judge"]
    lines = ["# Unlabelled real texts, all of NACE (UK SIC index): self-training through the best zero-real coder"
             + (", with and without the LLM judge" if args.judge else ""),
             "", f"`{report['command']}`", "", f"Created {report['created']}. {report['machine']['note']}.", "",
             f"The {imported.imported} real-train texts imported without codes and labelled by the zero-real log "
             "ensemble of four (kNN prototypes, embedding regression, fastText, lexical; notes + 24 synthetic "
             "samples per class, weights chosen on dev by bench.ensemble_zero_real --lexical"
             + (f" --grams {args.grams}" if args.grams else "") + (" --redirected" if args.redirected else "")
             + (" --coverage" if args.coverage else "")
             + (f"; the lexical coder's terms are words and their character {args.grams}-grams"
                if args.grams else "; the lexical coder's terms are words")
             + ("; the notes hold the excluded activities other codes send to each code" if args.redirected else "")
             + ("; the lexical coder adds its coverage and prior terms" if args.coverage else "")
             + (f"; both ensembles add the title-heads term at weight {args.heads:g} (engine.coders.heads)"
                if args.heads else "")
             + "). The pseudo-label "
             "threshold is the product's: chosen on held-out synthetic samples for the given precision, scored "
             "by the coder as it was before it joined them to its references. The same ensemble is then "
             "retrained on notes + synthetic + the pseudo-labels and scored on the test half. The withheld real "
             "codes measure the labels afterwards (report only)."
             + (" No judge." if not args.judge else
                f" In the rows marked judge, the default LLM ({judge['method']} judge, sha256 "
                f"`{judge['model_sha256'][:12]}`, k = {judge['k']}) re-ranks the ensemble's candidates for every "
                f"text whose top probability is below {judge['threshold']:g}; it was fitted as the product fits it, "
                f"on {judge['fit'].get('judged')} unsure of {judge['fit'].get('validation_texts')} "
                f"{judge['fit'].get('validation')} (no real text): combination {judge['combination']}. "
                f"{judge['stored_verdicts']} verdicts are kept in `{VERDICTS.name}`, so a rerun asks the LLM "
                "nothing it has answered.")
             + (f" Self-training in {args.rounds} rounds: each round's retrained ensemble labels the backlog again "
                "for the next." if args.rounds > 1 else "")
             + (f" Development run: the backlog is half of real-train ({imported.imported} texts); the other half "
                f"({len(test)} texts, their codes never in the project) is scored instead of the test half, which "
                "is not read." if args.dev else ""), "",
             "| labelling | threshold | pseudo-labels | their precision | precision of all labels | judged "
             "(answered from kept verdicts) | seconds |",
             "|---|---|---|---|---|---|---|",
             *[f"| {n} | {l['threshold']} ({l['threshold_from']}) | {l['pseudo']} | {l['pseudo_label_precision']:.1%} | "
               f"{l['all_labels_precision']:.1%} | {l.get('judged', 0)} ({l.get('reused', 0)}) | {l['label_s']} |"
               for n, l in labelling.items()], "",
             f"| arm | top-1 | top-5 | n ({'the scored half of real-train' if args.dev else 'test'}) |",
             "|---|---|---|---|",
             *[f"| {n} | {a['top1']:.1%} | {a['top5']:.1%} | {a['n']} |" for n, a in arms.items()], ""]
    for n, l in labelling.items():
        if l.get("changes"):
            c = l["changes"]
            lines += [f"Where the judge moved the labels ({n}): of the {c['judged']} texts it judged, the coder's "
                      f"label was right for {c['coder_right']:.1%} and the merged label for {c['combined_right']:.1%}; "
                      f"it changed {c['changed']} labels, {c['changed_to_right']} of them to the right code and "
                      f"{c['changed_from_right']} away from it.", ""]
    (RESULTS / f"unlabelled-nace-full{suffix}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
