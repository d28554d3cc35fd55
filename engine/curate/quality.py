"""Direct quality metrics of a synthetic dataset: size, diversity, self-similarity, flags, label agreement, coverage.

Text metrics (counts, distinct-n, vocabulary, self-similarity) describe the dataset a coder would be
trained on: accepted samples by default. Flag shares and label-check agreement describe every sample the
last curation judged, since rejected samples are what they are about.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from engine.coders.fasttext.bindings import preprocess
from engine.store.project import Project

NO_CONDITION = "-"


@dataclass
class TextStats:
    samples: int
    distinct_1: float          # distinct unigrams / unigrams
    distinct_2: float          # distinct bigrams / bigrams
    vocabulary: int
    self_similarity: float | None  # mean pairwise rapidfuzz ratio (0-1); None below two texts


@dataclass
class GroupQuality:
    """Metrics of one code or one generation run."""

    key: str
    judged: int                # samples considered, whatever their status
    text: TextStats
    flagged: dict[str, float] = field(default_factory=dict)   # rule -> share of judged samples
    label_agreement: float | None = None   # share of checked samples whose own code the checker ranks first
    label_in_top_k: float | None = None    # ... ranks within the curation's top k


@dataclass
class QualityReport:
    per_code: list[GroupQuality]
    per_run: list[GroupQuality]
    coverage: dict[str, dict[str, int]]    # code -> condition -> samples
    conditions: list[str]
    accepted_only: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        head = ("| {0} | judged | samples | distinct-1 | distinct-2 | vocabulary | self-sim | label agree | "
                "flagged |\n|---|---|---|---|---|---|---|---|---|\n")
        out = ["## Per run\n", head.format("run")] + [_row(g) for g in self.per_run]
        out += ["\n## Per code\n", head.format("code")] + [_row(g) for g in self.per_code]
        if self.conditions:
            out.append("\n## Coverage (samples per code and generation condition)\n")
            out.append("| code | " + " | ".join(md_cell(c) for c in self.conditions) + " |\n")
            out.append("|---|" + "---|" * len(self.conditions) + "\n")
            for code, cells in self.coverage.items():
                out.append(f"| {md_cell(code)} | " + " | ".join(str(cells.get(c, 0)) for c in self.conditions) + " |\n")
        return "".join(out)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md_cell(value: object) -> str:
    """User text (codes, run names, grid conditions) as one markdown table cell, shown literally:
    markdown and HTML characters escaped, line breaks and table pipes neutralised."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _row(g: GroupQuality) -> str:
    pct = lambda x: "" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    flags = ", ".join(f"{rule} {100 * share:.0f} %" for rule, share in sorted(g.flagged.items(), key=lambda kv: -kv[1]))
    t = g.text
    sim = "" if t.self_similarity is None else f"{t.self_similarity:.2f}"
    return (f"| {md_cell(g.key)} | {g.judged} | {t.samples} | {t.distinct_1:.2f} | {t.distinct_2:.2f} | {t.vocabulary} | "
            f"{sim} | {pct(g.label_agreement)} | {flags} |\n")


def text_stats(texts: Sequence[str], *, max_pairs_texts: int = 200, seed: int = 0) -> TextStats:
    """Size and diversity of a set of texts; self-similarity over at most `max_pairs_texts` of them."""
    tokens = [preprocess(t).split() for t in texts]
    unigrams = [w for ts in tokens for w in ts]
    bigrams = [pair for ts in tokens for pair in zip(ts, ts[1:])]
    d1 = len(set(unigrams)) / len(unigrams) if unigrams else 0.0
    d2 = len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    return TextStats(len(texts), round(d1, 4), round(d2, 4), len(set(unigrams)),
                     self_similarity(texts, max_texts=max_pairs_texts, seed=seed))


def self_similarity(texts: Sequence[str], *, max_texts: int = 200, seed: int = 0) -> float | None:
    """Mean rapidfuzz ratio (0-1) over all pairs, on a seeded sample of at most `max_texts` texts."""
    keys = [" ".join(preprocess(t).split()) for t in texts]
    if len(keys) < 2:
        return None
    if len(keys) > max_texts:
        keys = random.Random(seed).sample(keys, max_texts)
    matrix = process.cdist(keys, keys, scorer=fuzz.ratio, dtype=np.float32, workers=1)
    n = len(keys)
    upper = matrix[np.triu_indices(n, k=1)]
    return round(float(upper.mean()) / 100.0, 4)


def condition_key(condition: str | None) -> str:
    """A grid cell as one stable label: keys sorted, 'key=value' joined by ', '."""
    if not condition:
        return NO_CONDITION
    try:
        value = json.loads(condition)
    except ValueError:
        return condition
    if isinstance(value, dict):
        return ", ".join(f"{k}={value[k]}" for k in sorted(value)) or NO_CONDITION
    return json.dumps(value, sort_keys=True)


def _group(key: str, rows: list[tuple], texts: list[str], flags: dict[int, set[str]],
           checks: dict[int, tuple[int | None, int]], max_pairs_texts: int) -> GroupQuality:
    judged = len(rows)
    counts: Counter[str] = Counter(rule for r in rows for rule in flags.get(r[0], ()))
    checked = [checks[r[0]] for r in rows if r[0] in checks]
    agree = sum(rank == 1 for rank, _ in checked) / len(checked) if checked else None
    top_k = sum(rank is not None and rank <= k for rank, k in checked) / len(checked) if checked else None
    return GroupQuality(key, judged, text_stats(texts, max_pairs_texts=max_pairs_texts),
                        {rule: round(n / judged, 4) for rule, n in sorted(counts.items())},
                        None if agree is None else round(agree, 4), None if top_k is None else round(top_k, 4))


def quality_report(project: Project, *, run_ids: Sequence[int] | None = None, accepted_only: bool = True,
                   max_pairs_texts: int = 200) -> QualityReport:
    """Per code, per run and code x condition metrics of the samples of the given runs (all when None)."""
    where, args = "", []
    if run_ids is not None:
        where, args = f" WHERE s.run_id IN ({','.join('?' * len(run_ids)) or 'NULL'})", list(run_ids)
    rows = project.conn.execute(
        "SELECT s.id, s.run_id, s.code, s.text, s.status, s.condition, s.curation_id FROM samples s"
        f"{where} ORDER BY s.id", args).fetchall()
    flags: dict[int, set[str]] = defaultdict(set)
    for sid, rule in project.conn.execute(
            "SELECT f.sample_id, f.rule FROM sample_flags f JOIN samples s ON s.id = f.sample_id"
            f" AND f.curation_id = s.curation_id{where}", args):
        flags[sid].add(rule)
    top_k_of = {cid: (json.loads(params).get("label_check") or {}).get("top_k", 3)
                for cid, params in project.conn.execute("SELECT id, params FROM curation_runs")}
    checks: dict[int, tuple[int | None, int]] = {}
    for sid, rank, cid in project.conn.execute(
            "SELECT c.sample_id, c.own_rank, c.curation_id FROM sample_checks c JOIN samples s ON s.id = c.sample_id"
            f" AND c.curation_id = s.curation_id{where}", args):
        checks[sid] = (rank, top_k_of.get(cid, 3))

    def chosen(group: Iterable[tuple]) -> list[str]:
        return [r[3] for r in group if not accepted_only or r[4] == "accepted"]

    by_code: dict[str, list[tuple]] = defaultdict(list)
    by_run: dict[int, list[tuple]] = defaultdict(list)
    coverage: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_code[row[2]].append(row)
        by_run[row[1]].append(row)
        if not accepted_only or row[4] == "accepted":
            coverage[row[2]][condition_key(row[5])] += 1
    per_code = [_group(code, group, chosen(group), flags, checks, max_pairs_texts)
                for code, group in sorted(by_code.items())]
    names = dict(project.conn.execute("SELECT id, name FROM generation_runs").fetchall())
    per_run = []
    for run_id, group in sorted(by_run.items()):
        quality = _group(f"{run_id} {names.get(run_id, '')}".strip(), group, chosen(group), flags, checks,
                         max_pairs_texts)
        # A run's self-similarity is the mean of its codes': texts of different codes are meant to differ.
        of_code: dict[str, list[tuple]] = defaultdict(list)
        for row in group:
            of_code[row[2]].append(row)
        sims = [sim for code_rows in of_code.values()
                if (sim := self_similarity(chosen(code_rows), max_texts=max_pairs_texts)) is not None]
        quality.text.self_similarity = round(sum(sims) / len(sims), 4) if sims else None
        per_run.append(quality)
    conditions = sorted({c for cells in coverage.values() for c in cells})
    return QualityReport(per_code, per_run, {code: dict(coverage[code]) for code in sorted(by_code)},
                         conditions, accepted_only)
