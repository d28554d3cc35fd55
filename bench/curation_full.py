"""Does the default curation help the zero-real coder on all of NACE? Development split (real-train) only.

    PYTHONPATH=. python -m bench.ensemble_zero_real dev --lexical --grams 4 --redirected --coverage   # first
    PYTHONPATH=. python -m bench.curation_full

A copy of the zero-real work project (notes + 24 synthetic samples per class, runs 1-5) is curated with the
product's defaults and no real text (`statcoder curate run --no-real-train`: the embedding label check in
notes mode relabels or rejects what it doubts), again with only its confident flags, and again without the
label check; each time the four members of the zero-real log ensemble are trained
again on the accepted samples, with their curated labels, and scored on real-train beside the uncurated
members of bench/results/ensemble-zero-real-lexical-grams4-redirected-coverage-dev-nace-full.json. On NACE
10-11 the same curation lifted the embedding coder by 5.5 points (nace-uksic-10-11-judge-curation.md); on all
of NACE its label check is about half right, so this asks whether the default still helps there.

Writes bench/results/curation-full-dev-nace-full.{md,json}.

    PYTHONPATH=. python -m bench.curation_full --judge     # `curated by judge` (issue 14), same split

runs the default curation with the local LLM judge (the default model, the product's settings: channel
method, five candidates, confidence 0.5) as the label check's second reader: a flag relabels or rejects
only where the judge prefers another code. It works in bench/work/curation-judge-nace-full.statcoder, which
is kept: every verdict is stored there as it is made, so a run that is stopped resumes when started again;
the verdicts also go to bench/results/curation-judge-verdicts-nace-full.jsonl.gz when the run ends or is
stopped, and are loaded from it first, so a run goes on on another machine.
It scores the four, and the four with the title heads (the best zero-real coder), against the uncurated
figures, and writes bench/results/curation-judge-dev-nace-full.{md,json}.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.ensemble_zero_real as zero_real  # noqa: E402
from bench.common import (backup_copy, command_line, load_result, load_verdicts, machine, now,  # noqa: E402
                          save_verdicts)
from engine.coders.train import train_coder  # noqa: E402
from engine.curate.settings import CurationSettings, run_curation  # noqa: E402
from engine.store.project import Project  # noqa: E402

WORK = ROOT / "bench" / "work" / "curation-full-nace-full.statcoder"
JUDGE_WORK = ROOT / "bench" / "work" / "curation-judge-nace-full.statcoder"
RESULTS = ROOT / "bench" / "results"
STEM, JUDGE_STEM = "curation-full-dev-nace-full", "curation-judge-dev-nace-full"
# Every verdict the judge gave in this arm (key, judge sha256, verdict), so that a run stopped on one machine
# goes on on another: loaded into the work project before the curation, written back after it (or its stop).
VERDICTS = RESULTS / "curation-judge-verdicts-nace-full.jsonl.gz"
WEIGHTS = [1.0, 0.1, 0.1, 0.25]      # the product's zero-real weights (engine.coders.ensemble)


def curated_arm(settings: CurationSettings) -> dict:
    """A fresh copy of the zero-real project curated with `settings`, the four retrained and scored on real-train."""
    for path in (WORK, WORK.with_name(WORK.stem + ".models")):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    # the zero-real work project when there (its embeddings cached), else the committed project it copies
    backup_copy(zero_real.WORK if zero_real.WORK.exists() else zero_real.SOURCE, WORK)
    project = Project.open(WORK)
    curation = run_curation(project, settings)
    return scored(project, curation)


def scored(project: Project, curation, *, heads: bool = False) -> dict:
    """The four retrained on what `curation` accepted and scored on real-train (with `heads`, also the four
    with the title-heads term at the product's zero-real weight)."""
    statuses = dict(project.conn.execute("SELECT status, COUNT(*) FROM samples GROUP BY status").fetchall())
    ids = {kind: train_coder(project, zero_real.mix(), kind=kind, name=f"curated {kind}", make_default=False,
                             lexical=zero_real.lexical_options()).model_id for kind in zero_real.MEMBERS}
    logs, texts, gold, codes = zero_real.dev_logs(project, ids)
    scores = {k: zero_real.accuracy(v, gold) for k, v in logs.items()}
    four = sum(w * logs[k] for w, k in zip(WEIGHTS, zero_real.MEMBERS))
    scores["four"] = zero_real.accuracy(four, gold)
    if heads:
        from engine.coders.heads import ZERO_REAL_BETA, TitleHeads, code_heads

        term = TitleHeads(code_heads(project, codes), ZERO_REAL_BETA).term(texts, codes)
        scores["four + heads"] = zero_real.accuracy(four + term, gold)
    project.close()
    return {"curation": {"flags": curation.flags, "statuses": statuses, "relabelled": curation.relabeled,
                         "seconds": round(curation.seconds, 1)}, "scores": scores}


def judged_arm(threads: int) -> tuple[dict, dict]:
    """The default curation with the LLM judge reading every label-check flag, in a work project that is
    kept (its stored verdicts make a stopped run resume); the four retrained and scored."""
    import dataclasses

    from engine.assist.judge import judge_backend_settings
    from engine.cli.common import progress_printer
    from engine.curate.judgecheck import JudgeConfirm
    from engine.curate.settings import curation_options
    from engine.curate.store import curate
    from engine.llm.backends import open_backend

    if not JUDGE_WORK.exists():
        JUDGE_WORK.parent.mkdir(parents=True, exist_ok=True)
        backup_copy(zero_real.WORK if zero_real.WORK.exists() else zero_real.SOURCE, JUDGE_WORK)
    project = Project.open(JUDGE_WORK)
    print(f"[{now()}] {load_verdicts(project, VERDICTS)} verdicts loaded from {VERDICTS.name}", file=sys.stderr, flush=True)
    options = curation_options(project, CurationSettings(run_ids=list(zero_real.RUNS), use_real_train=False))
    with open_backend(judge_backend_settings(None, threads=threads)) as backend:
        confirm = JudgeConfirm(project, backend)
        options = dataclasses.replace(options, label_check=dataclasses.replace(options.label_check, confirm=confirm))
        try:
            curation = curate(project, run_ids=list(zero_real.RUNS), options=options, progress=progress_printer())
        finally:    # also when stopped: the verdicts so far go to the committed file, for the next machine
            print(f"\n[{now()}] {save_verdicts(project, VERDICTS)} verdicts saved to {VERDICTS.name}", file=sys.stderr, flush=True)
    judge = {**confirm.summary(), **confirm.describe(),
             "stored_verdicts": project.conn.execute("SELECT COUNT(*) FROM judge_verdicts").fetchone()[0]}
    return scored(project, curation, heads=True), judge


def main_judge(argv: list[str], threads: int) -> int:
    uncurated_run = json.loads((RESULTS / f"{zero_real.DEV}.json").read_text(encoding="utf-8"))
    heads_run = load_result(zero_real.DEV.replace("-dev-", "-heads-dev-"))
    default = load_result(STEM)
    if heads_run is None or default is None:
        raise SystemExit("the uncurated heads dev file or curation-full-dev-nace-full.json is missing")
    from engine.coders.heads import ZERO_REAL_BETA

    started = time.perf_counter()
    arm, judge = judged_arm(threads)
    uncurated = {k: uncurated_run["members"][k] for k in zero_real.MEMBERS}
    uncurated["four"] = uncurated_run["grid"][str(WEIGHTS)]
    uncurated["four + heads"] = heads_run["heads_grid"][f"{ZERO_REAL_BETA:g}"]
    result = {"command": command_line("bench.curation_full", argv), "created": now(), "machine": machine(),
              "uncurated": uncurated, "default curation": default["arms"]["default"], "curated by judge": arm,
              "judge": judge, "seconds": round(time.perf_counter() - started, 1)}
    (RESULTS / f"{JUDGE_STEM}.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    c, d = arm["curation"], default["arms"]["default"]["curation"]
    lines = ["# `curated by judge` on all of NACE, zero real coded texts (development split)", "",
             f"`{result['command']}`", "", f"Created {result['created']}. {result['machine']['note']}.", "",
             "The 14,760 samples of runs 1-5 curated with the product's defaults and no real text, with the local "
             "LLM judge (the default model; the product's judge settings, nothing tuned) as the label check's "
             "second reader: a flag relabels or rejects a sample only where the judge prefers another code with "
             "at least the confidence below. Every coder is trained again on notes + the accepted samples with "
             "their curated labels and scored on real-train (the test half is not read). Uncurated: "
             f"`{zero_real.DEV}.json` and its heads file; default curation (no judge): `{STEM}.json`. The four: "
             f"the log ensemble with the product's zero-real weights {WEIGHTS}; + heads: with the title-heads "
             f"term at {ZERO_REAL_BETA:g}.", "",
             f"- judge: {judge['judged']} flags read ({judge['reused']} from verdicts stored by an earlier, "
             f"stopped run), {judge['confirmed']} confirmed, {judge['dismissed']} dismissed; method "
             f"{judge['method']}, k {judge['k']}, confidence {judge['min_confidence']}; "
             f"{judge['seconds_per_judged']} s per flag asked.",
             f"- curated by judge: {c['statuses'].get('accepted', 0)} accepted ({c['relabelled']} relabelled), "
             f"{c['statuses'].get('rejected', 0)} rejected; default curation: {d['statuses'].get('accepted', 0)} "
             f"accepted ({d['relabelled']} relabelled), {d['statuses'].get('rejected', 0)} rejected.", "",
             "| coder | uncurated | default curation | curated by judge |", "|---|---|---|---|"]
    for coder in (*zero_real.MEMBERS, "four", "four + heads"):
        a = uncurated[coder]
        cells = []
        for scores in (default["arms"]["default"]["scores"], arm["scores"]):
            s = scores.get(coder)
            cells.append(f"{s['top1']:.1%} / {s['top5']:.1%} ({100 * (s['top1'] - a['top1']):+.1f})" if s else "not run")
        lines.append(f"| {coder} | {a['top1']:.1%} / {a['top5']:.1%} | " + " | ".join(cells) + " |")
    lines += ["", f"Cells: top-1 / top-5 (top-1 change against uncurated). Run time {result['seconds']} s.", ""]
    (RESULTS / f"{JUDGE_STEM}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    zero_real.use_lexical(4)
    zero_real.use_redirected()
    zero_real.use_coverage()
    args = sys.argv[1:] if argv is None else argv
    if "--judge" in args:
        return main_judge(args, threads=2)
    baseline_path = RESULTS / f"{zero_real.DEV}.json"
    if not baseline_path.exists():
        raise SystemExit(f"{baseline_path.name} is missing: run the bench.ensemble_zero_real dev command first")
    baseline = json.loads(baseline_path.read_text(encoding="utf-8"))
    started = time.perf_counter()
    variants = {"default": CurationSettings(run_ids=list(zero_real.RUNS), use_real_train=False),
                "confident flags only": CurationSettings(run_ids=list(zero_real.RUNS), use_real_train=False,
                                                         top_k=1000),
                "without the label check": CurationSettings(run_ids=list(zero_real.RUNS), use_real_train=False,
                                                            label_check=False)}
    arms = {name: curated_arm(settings) for name, settings in variants.items()}
    uncurated = {k: baseline["members"][k] for k in zero_real.MEMBERS}
    uncurated["four"] = baseline["grid"][str(WEIGHTS)]
    result = {"command": command_line("bench.curation_full", argv), "created": now(), "machine": machine(),
              "uncurated": uncurated, "arms": arms, "seconds": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{STEM}.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    lines = ["# The default curation on all of NACE, zero real coded texts (development split)", "",
             f"`{result['command']}`", "", f"Created {result['created']}. {result['machine']['note']}.", "",
             "The 14,760 samples of runs 1-5 curated with the product's defaults and no real text; then with the "
             "label check flagging only a sample another code is predicted for with at least 0.8 (not one whose "
             "own code is outside the checker's top 3: top k 1000); then without the label check (the other "
             "rules: duplicates, echoes, conflicts with the notes and excludes, ...). Each time every coder is trained again on notes + the accepted samples with "
             "their curated labels and scored on real-train (the test half is not read); the uncurated figures "
             f"are those of `{zero_real.DEV}.json`. The four: the log ensemble with the product's zero-real "
             f"weights {WEIGHTS}.", ""]
    for name, arm in arms.items():
        c = arm["curation"]
        lines.append(f"- {name}: {c['statuses'].get('accepted', 0)} accepted ({c['relabelled']} of them relabelled), "
                     f"{c['statuses'].get('rejected', 0)} rejected; label-check flags "
                     f"{c['flags'].get('label_check', 0)}; {c['seconds']} s.")
    lines += ["", "| coder | uncurated | " + " | ".join(arms) + " |", "|---|---|" + "---|" * len(arms)]
    for coder in (*zero_real.MEMBERS, "four"):
        a = uncurated[coder]
        cells = [f"{arm['scores'][coder]['top1']:.1%} / {arm['scores'][coder]['top5']:.1%} "
                 f"({100 * (arm['scores'][coder]['top1'] - a['top1']):+.1f})" for arm in arms.values()]
        lines.append(f"| {coder} | {a['top1']:.1%} / {a['top5']:.1%} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: top-1 / top-5 (top-1 change). n: real-train texts whose code the coders know: "
              + ", ".join(f"{name} {arm['scores']['four']['n']}" for name, arm in arms.items())
              + f", uncurated {uncurated['four']['n']}. Run time {result['seconds']} s.", ""]
    (RESULTS / f"{STEM}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
