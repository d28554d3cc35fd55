"""Which generation strategies carry a zero-real fastText coder? Measured on the real-train half only.

For each strategy of a run: fastText (bench settings, one thread) on the notes plus only that
strategy's samples, and on the notes plus every sample but that strategy's; scored on real-train,
which a zero-real coder never trains on (the test half is not read). This chose the strategy of
the second NACE 10-11 generation run.

    python -m bench.strategy_dev --project bench/projects/nace-10-11.statcoder --run-id 1 --subset 10,11
"""

from __future__ import annotations

import argparse

from engine.coders.fasttext.model import FastTextCoder
from engine.classification.note_lines import notes_pairs
from engine.store.project import Project
from engine.realdata.importing import real_texts
from engine.classification import leaf_codes_under

from .common import command_line, now, write_result
from .curation_dev import PARAMS, top1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--subset", required=True)
    parser.add_argument("--name", default="strategy-dev-nace-10-11")
    args = parser.parse_args(argv)
    with Project.open(args.project) as project:
        codes = leaf_codes_under(project, args.subset.split(","))
        notes = list(notes_pairs(project, codes))
        dev = real_texts(project, "train", codes)
        rows = project.conn.execute("SELECT text, code, strategy FROM samples WHERE run_id = ? ORDER BY id",
                                    (args.run_id,)).fetchall()

    def score(pairs) -> float:
        return round(top1(FastTextCoder.train(pairs, PARAMS), dev), 4)

    table = [{"data": "notes + every sample", "samples": len(rows),
              "dev_top1": score(notes + [(t, c) for t, c, _ in rows])}]
    for strategy in sorted({s for _, _, s in rows}):
        only = [(t, c) for t, c, s in rows if s == strategy]
        without = [(t, c) for t, c, s in rows if s != strategy]
        table.append({"data": f"notes + {strategy} only", "samples": len(only), "dev_top1": score(notes + only)})
        table.append({"data": f"notes + all but {strategy}", "samples": len(without),
                      "dev_top1": score(notes + without)})
    for row in table:
        print(f"{row['dev_top1']:.3f}  {row['samples']:4d}  {row['data']}", flush=True)
    command = command_line("bench.strategy_dev", argv)
    payload = {"benchmark": "nace-uksic", "subset": args.subset.split(","), "command": command, "created": now(),
               "evaluated_on": "real-train half (development set; the test half is not read)",
               "run_id": args.run_id, "n_dev": len(dev), "n_notes": len(notes), "rows": table}
    lines = ["# Generation strategies on the development set (fastText, notes + samples)", "", f"`{command}`", "",
             f"Scored on {len(dev)} real-train texts; test half not read.", "",
             "| training data | samples | dev top-1 |", "|---|---|---|"]
    lines += [f"| {r['data']} | {r['samples']} | {100 * r['dev_top1']:.1f} % |" for r in table]
    write_result(args.name, payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
