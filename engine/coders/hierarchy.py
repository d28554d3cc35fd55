"""Hierarchy-aware training: label smoothing towards a code's siblings in the classification tree.

A synthetic sample written for one code is often as good an example of a sibling (the same parent:
"processing of poultry meat" against "processing of meat"), and the coder's worst confusions are
between siblings. SuperGen (Meng et al. 2022) trains with label smoothing; here the smoothed mass
goes to the siblings only: a training text of code c counts as c with weight 1 - eps and as each
leaf sibling of c with weight eps / n_siblings. It is the soft form of training with the parent as
an extra label (the parent's probability is the siblings' sum, so mass on siblings is mass on the
parent that the leaf label does not get).

fastText has no soft targets, but a line with several labels trains, at each pass, on one label drawn
uniformly among them (softmax loss); repeating the own label m times beside each sibling once gives
the own label the share m / (m + n). The embedding coder's logistic regression takes soft targets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from engine.store.project import Project

MAX_SIBLINGS = 20          # a flat level (hundreds of siblings) would spread the mass too thin to matter
MAX_OWN_REPEATS = 200      # bound on fastText label tokens per line


def sibling_map(project: Project, codes: Iterable[str]) -> dict[str, list[str]]:
    """Leaf code -> its leaf siblings (same parent) among `codes`, in code order."""
    wanted = set(codes)
    by_parent: dict[str | None, list[str]] = defaultdict(list)
    parent_of: dict[str, str | None] = {}
    for code, parent in project.conn.execute("SELECT code, parent FROM codes WHERE is_leaf ORDER BY ord"):
        if code in wanted:
            by_parent[parent].append(code)
            parent_of[code] = parent
    return {c: [s for s in by_parent[p] if s != c][:MAX_SIBLINGS] for c, p in parent_of.items()}


def smoothed_targets(code: str, siblings: dict[str, list[str]], eps: float) -> list[tuple[str, float]]:
    """(code, weight) pairs summing to 1: 1 - eps on the code, eps shared by its siblings (none: all on the code)."""
    sibs = siblings.get(code, [])
    if eps <= 0 or not sibs:
        return [(code, 1.0)]
    return [(code, 1.0 - eps)] + [(s, eps / len(sibs)) for s in sibs]


def fasttext_labels(code: str, siblings: dict[str, list[str]], eps: float) -> list[str]:
    """The labels of one fastText line: the own code repeated so that it is drawn with probability ~ 1 - eps."""
    sibs = siblings.get(code, [])
    if eps <= 0 or not sibs:
        return [code]
    own = max(1, min(MAX_OWN_REPEATS, round(len(sibs) * (1.0 - eps) / eps)))
    return [code] * own + list(sibs)


def soft_target_matrix(train_codes: list[str], classes: list[str], siblings: dict[str, list[str]],
                       eps: float) -> np.ndarray:
    """Rows of target probabilities over `classes` for the embedding coder's logistic regression."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(train_codes), len(classes)), dtype=np.float32)
    for row, code in enumerate(train_codes):
        targets = [(c, w) for c, w in smoothed_targets(code, siblings, eps) if c in index]
        total = sum(w for _, w in targets)
        for c, w in targets:
            out[row, index[c]] = w / total
    return out
