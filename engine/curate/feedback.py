"""ProGen's feedback step: the round-1 samples a coder trained on the notes finds most helpful, per code.

Ye et al. (2022) generate in rounds and show the generator, as in-context examples, the samples of the
previous round that a small task model found most useful. Here the task model is a fastText coder trained
on the notes alone (no synthetic or real text, so it judges by what the classification says), and a
sample's usefulness is its loss under that coder: the lowest -log p(own code) first. The chosen samples
go into the second round's GenerationParams.examples["progen"] (engine.generate).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Sequence

from engine.classification.note_lines import notes_pairs
from engine.coders.fasttext.model import FastTextCoder
from engine.coders.fasttext.training import DEFAULT_PARAMS, SMALL_SET_BUCKETS
from engine.errors import StatcoderError
from engine.store.project import Project


def helpful_samples(project: Project, *, run_ids: Sequence[int], codes: Sequence[str],
                    top: int = 8) -> dict[str, list[str]]:
    """Code -> up to `top` accepted samples of the runs (their curated label), lowest loss first."""
    marks = ",".join("?" * len(run_ids))
    rows = project.conn.execute(
        f"SELECT text, COALESCE(curated_code, code) FROM samples WHERE run_id IN ({marks}) AND status = 'accepted'"
        " ORDER BY id", list(run_ids)).fetchall()
    wanted = set(codes)
    rows = [(t, c) for t, c in rows if c in wanted]
    if not rows:
        raise StatcoderError(f"runs {', '.join(map(str, run_ids))} have no accepted samples for these codes; "
                             "ProGen needs a first round to learn from")
    leaves = [r[0] for r in project.conn.execute("SELECT code FROM codes WHERE is_leaf")]
    params = dataclasses.replace(DEFAULT_PARAMS, bucket=SMALL_SET_BUCKETS, thread=1)  # deterministic
    coder = FastTextCoder.train(list(notes_pairs(project, leaves)), params)
    predictions = coder.predict_many([t for t, _ in rows], k=len(coder.codes))
    scored: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for i, ((text, code), pred) in enumerate(zip(rows, predictions)):
        loss = -math.log(max(dict(pred).get(code, 0.0), 1e-9))
        scored[code].append((loss, i, text))
    return {code: [t for _, _, t in sorted(items)[:top]] for code, items in scored.items()}
