"""Title heads on NAICS 2017 (development, real-train only): why the term is off where titles lead with products.

    PYTHONPATH=. python -m bench.unlabelled --benchmark naics --labeller notes-ensemble --redirected \\
        --precision 0.9 --threshold 0                    # first: the work project this reads
    STATCODER_DATA_DIR=... PYTHONPATH=. python -m bench.title_heads

engine.coders.heads adds log(1 + beta x matches) to a 'log' ensemble's score for the codes whose titles, on
their path, lead with a word the text names. On all of NACE the titles lead with the activity ('Wholesale of
...') and the term lifts the zero-real ensemble of four from 60.7 to 62.0 % on the development half
(bench/results/ensemble-zero-real-lexical-grams4-redirected-coverage-heads-dev-nace-full.md). NAICS titles lead
with the product ('Soybean Farming', 'Chemical and Allied Products Merchant Wholesalers'). This scores the
NAICS ensemble of four trained on the notes alone (redirected notes; bench.unlabelled's labeller) on every
real-train text of the NAICS index, with the term at each weight of the grid, as the product would add it if
the classification said its titles lead with the activity. The test half is not read.

Writes bench/results/title-heads-dev-naics-full.{md,json}.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.ensemble_zero_real as zero_real  # noqa: E402
from bench.common import command_line, machine, now, open_benchmark_project, write_result  # noqa: E402
from engine.coders.heads import TitleHeads, code_heads  # noqa: E402
from engine.coders.registry import load_coder  # noqa: E402
from engine.store.project import Project  # noqa: E402

WORK = ROOT / "bench" / "work" / "unlabelled-naics-full-notes-ensemble-redirected.statcoder"
LABELLER = "labeller: notes ensemble"
GRID = (0.0, 1.0, 3.0, 10.0, 20.0, 50.0)
STEM = "title-heads-dev-naics-full"


def main(argv: list[str] | None = None) -> int:
    if not WORK.exists():
        raise SystemExit(f"{WORK} is missing: run the bench.unlabelled command in this module's docstring first")
    work = Project.open(WORK)
    row = work.conn.execute("SELECT id FROM models WHERE name = ? ORDER BY id DESC", (LABELLER,)).fetchone()
    if row is None:
        raise SystemExit(f"{WORK.name} has no model {LABELLER!r}")
    ensemble, _ = load_coder(work, row[0])
    # the texts and their codes: the NAICS benchmark project (the work project holds them without codes)
    truth = open_benchmark_project("naics", None)
    codes = ensemble.codes
    at = {c: j for j, c in enumerate(codes)}
    rows = [(t, c) for t, c in truth.conn.execute("SELECT text, code FROM real_texts WHERE split = 'train' ORDER BY id")
            if c in at]
    texts, gold = [t for t, _ in rows], np.array([at[c] for _, c in rows])
    print(f"[{now()}] scoring {len(texts)} texts", file=sys.stderr, flush=True)
    base = sum(w * zero_real.log_probs(m, texts, codes) for w, m in zip(ensemble.weights, ensemble.members))
    heads = code_heads(work, codes)
    shared = Counter(h for hs in heads.values() for h in hs)
    grid = {}
    for beta in GRID:
        term = TitleHeads(heads, beta).term(texts, codes)
        grid[f"{beta:g}"] = {"beta": beta, **zero_real.accuracy(base + term, gold)}
        print(f"[{now()}] beta {beta:g}: {grid[f'{beta:g}']['top1']:.4f}", file=sys.stderr, flush=True)
    named = int(sum(bool(TitleHeads(heads, 1.0).text_heads(t)) for t in texts))
    result = {"command": command_line("bench.title_heads", argv), "created": now(), "machine": machine(),
              "labeller_model_id": row[0], "weights": ensemble.weights, "texts": len(texts),
              "texts_naming_a_head": named, "heads": len(shared), "most_shared_heads": shared.most_common(15),
              "grid": grid}
    lines = ["# Title heads on NAICS 2017 (development: every real-train text of the NAICS index)", "",
             f"`{result['command']}`", "", f"Created {result['created']}. {result['machine']['note']}.", "",
             f"The NAICS ensemble of four trained on the notes alone (bench.unlabelled's labeller, weights "
             f"{ensemble.weights}), with the title-heads term of engine.coders.heads added at each weight. NAICS "
             f"titles lead with the product, so the heads are mostly products: {len(shared)} heads shared by at "
             "least 5 codes, the most shared " + ", ".join(f"'{h}' ({n})" for h, n in shared.most_common(8))
             + f". {named} of the {len(texts)} texts name one.", "",
             "| beta | top-1 | top-5 |", "|---|---|---|"]
    lines += [f"| {v['beta']:g} | {v['top1']:.1%} | {v['top5']:.1%} |" for v in grid.values()]
    lines += ["", "The product leaves the term off for NAICS (engine.coders.heads.ACTIVITY_TITLE_FORMATS holds "
              "NACE's format only).", ""]
    write_result(STEM, result, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
