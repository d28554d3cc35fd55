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
from bench.common import backup_copy, command_line, machine, now  # noqa: E402
from engine.coders.train import train_coder  # noqa: E402
from engine.curate.settings import CurationSettings, run_curation  # noqa: E402
from engine.store.project import Project  # noqa: E402

WORK = ROOT / "bench" / "work" / "curation-full-nace-full.statcoder"
RESULTS = ROOT / "bench" / "results"
STEM = "curation-full-dev-nace-full"
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
    statuses = dict(project.conn.execute("SELECT status, COUNT(*) FROM samples GROUP BY status").fetchall())
    ids = {kind: train_coder(project, zero_real.mix(), kind=kind, name=f"curated {kind}", make_default=False,
                             lexical=zero_real.lexical_options()).model_id for kind in zero_real.MEMBERS}
    logs, _, gold, _ = zero_real.dev_logs(project, ids)
    scores = {k: zero_real.accuracy(v, gold) for k, v in logs.items()}
    scores["four"] = zero_real.accuracy(sum(w * logs[k] for w, k in zip(WEIGHTS, zero_real.MEMBERS)), gold)
    project.close()
    return {"curation": {"flags": curation.flags, "statuses": statuses, "relabelled": curation.relabeled,
                         "seconds": round(curation.seconds, 1)}, "scores": scores}


def main(argv: list[str] | None = None) -> int:
    zero_real.use_lexical(4)
    zero_real.use_redirected()
    zero_real.use_coverage()
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
