"""Which curation rules help a zero-real fastText coder? Measured on the real-train half only.

The zero-real arm never trains on real text, so the real-train half is a fair development set for
choosing curation policies; the test half is not read here (see BENCHMARK.md). Every policy trains
fastText, with the bench's fixed settings and one thread (deterministic), on the notes plus the
synthetic samples the policy keeps (and relabels), and is scored on real-train.

    python -m bench.curation_dev --project bench/projects/nace-10-11.statcoder --run-id 1 --subset 10,11
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from engine.curate.store import GARBAGE_RULES, CurationOptions, curate
from engine.coders.fasttext.model import FastTextCoder
from engine.classification.note_lines import notes_pairs
from engine.store.project import Project
from engine.realdata.importing import real_texts
from engine.coders.fasttext.training import DEFAULT_PARAMS
from engine.classification import leaf_codes_under

from .common import command_line, now, write_result

PARAMS = dataclasses.replace(DEFAULT_PARAMS, thread=1)


def top1(coder: FastTextCoder, pairs) -> float:
    predictions = coder.predict_many([t for t, _ in pairs], k=1)
    return sum(bool(p) and p[0][0] == c for p, (_, c) in zip(predictions, pairs)) / len(pairs)


def flags_by_sample(project: Project) -> dict[int, dict[str, str | None]]:
    out: dict[int, dict[str, str | None]] = defaultdict(dict)
    for sid, rule, suggested in project.conn.execute(
            "SELECT f.sample_id, f.rule, f.suggested_code FROM sample_flags f JOIN samples s ON s.id = f.sample_id"
            " WHERE f.curation_id = s.curation_id AND NOT f.overridden"):
        out[sid][rule] = suggested
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--run-id", type=int, action="append", required=True)
    parser.add_argument("--subset", required=True)
    parser.add_argument("--checker", choices=("fasttext", "embedding"), default="fasttext")
    parser.add_argument("--name", default="curation-dev-nace-10-11")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.statcoder"
        shutil.copy(args.project, path)
        with Project.open(path) as project:
            codes = leaf_codes_under(project, args.subset.split(","))
            options = CurationOptions(use_real_train=False)
            if args.checker == "embedding":
                from engine.coders.embedding.checker import embedding_checker
                options.label_check = dataclasses.replace(options.label_check, mode="notes",
                                                          checker=embedding_checker())
            result = curate(project, run_ids=args.run_id, options=options)
            flags = flags_by_sample(project)
            marks = ",".join("?" * len(args.run_id))
            samples = project.conn.execute(f"SELECT id, text, code FROM samples WHERE run_id IN ({marks})",
                                           args.run_id).fetchall()
            notes = list(notes_pairs(project, codes))
            dev = real_texts(project, "train", codes)
    label_rules = {"label_check", "excludes_conflict", "label_conflict", "note_conflict"}
    policies = {
        "no curation": lambda f: True,
        "default (reject every rule but note_copy)": lambda f: not (set(f) - {"note_copy"}),
        "garbage only": lambda f: not (set(f) & set(GARBAGE_RULES)),
        "garbage + exact duplicates": lambda f: not (set(f) & (set(GARBAGE_RULES) | {"duplicate"})),
        "everything but label rules": lambda f: not (set(f) - label_rules - {"note_copy"}),
        "label rules only": lambda f: not (set(f) & label_rules),
    }
    for rule in sorted({r for f in flags.values() for r in f}):
        policies[f"default, keeping '{rule}'"] = lambda f, rule=rule: not (set(f) - {"note_copy", rule})
    rows = []
    for name, keep in policies.items():
        kept = [(t, c) for sid, t, c in samples if keep(flags.get(sid, {}))]
        coder = FastTextCoder.train(notes + kept, PARAMS)
        rows.append({"policy": name, "synthetic_kept": len(kept), "dev_top1": round(top1(coder, dev), 4)})
        print(f"{rows[-1]['dev_top1']:.3f}  {len(kept):4d}  {name}", flush=True)
    # Relabel instead of reject: a sample a label rule moves to another code trains that code.
    relabeled = []
    for sid, t, c in samples:
        f = flags.get(sid, {})
        if set(f) - label_rules - {"note_copy"}:
            continue
        target = next((f[r] for r in ("excludes_conflict", "label_check") if f.get(r)), None)
        relabeled.append((t, target or c))
    coder = FastTextCoder.train(notes + relabeled, PARAMS)
    rows.append({"policy": "default, but label-rule hits relabeled to the suggested code",
                 "synthetic_kept": len(relabeled), "dev_top1": round(top1(coder, dev), 4)})
    print(f"{rows[-1]['dev_top1']:.3f}  {len(relabeled):4d}  {rows[-1]['policy']}", flush=True)
    counts = Counter(r for f in flags.values() for r in f)
    payload = {"benchmark": "nace-uksic", "subset": args.subset.split(","), "command": command_line("bench.curation_dev", argv),
               "created": now(), "evaluated_on": "real-train half (development set; the test half is not read)",
               "checker": args.checker, "run_ids": args.run_id, "n_dev": len(dev), "n_notes": len(notes),
               "flag_counts": dict(counts), "curation": result.to_dict(), "policies": rows}
    lines = [f"# Curation policies on the development set ({args.checker} label check)", "",
             f"`{command_line('bench.curation_dev', argv)}`", "", f"Scored on {len(dev)} real-train texts; test half not read. "
             f"Flags: {dict(counts)}", "", "| policy | synthetic kept | dev top-1 |", "|---|---|---|"]
    lines += [f"| {r['policy']} | {r['synthetic_kept']} | {100 * r['dev_top1']:.1f} % |" for r in rows]
    write_result(f"{args.name}-{args.checker}", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
