"""Generation strategies: which apply to a code, and the deterministic sequence of tasks each yields."""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field

from engine.generate.cards import CodeCard
from engine.generate.prompts import (Task, contrastive_task, few_shot_task, grid_task, keywords_task, nec_task, notes_task,
                                    progen_task, retrieved_task)

# Order within a code: the specific strategies first, the robust ones last, because the last
# strategy of a code tops up whatever the others fell short of (duplicates, parse failures).
# progen (ProGen, Ye et al. 2022) and retrieved (SynthesizRR, Divekar and Durrett 2024) show examples chosen
# before the run (GenerationParams.examples); they apply only to codes that have some.
STRATEGIES = ("contrastive", "nec", "few-shot", "progen", "retrieved", "keywords", "grid", "notes")
EXAMPLE_STRATEGIES = ("progen", "retrieved")
DEFAULT_STRATEGIES = ("contrastive", "nec", "keywords", "grid", "notes")


@dataclass(frozen=True)
class StrategyContext:
    """Per-run inputs a strategy may use besides the code card."""

    items: int
    language: str
    grid_cells: list[dict[str, str]]
    few_shot_k: int
    train_examples: list[str]       # real-train texts of this code (never the test split)
    examples: dict[str, list[str]] = field(default_factory=dict)   # strategy -> this code's chosen examples
    examples_k: int = 4


def unit_seed(run_seed: int, unit: str) -> int:
    """A request's seed: fixed by the run's seed and the unit's key, so reruns repeat exactly."""
    return int(hashlib.sha256(f"{run_seed}|{unit}".encode("utf-8")).hexdigest()[:8], 16)


def grid_cells(grid: dict[str, list[str]], seed: int) -> list[dict[str, str]]:
    """Every cell of the condition grid, in an order shuffled by the run's seed."""
    keys = sorted(grid)
    cells = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    random.Random(seed).shuffle(cells)
    return cells


def applies(strategy: str, card: CodeCard, ctx: StrategyContext) -> bool:
    if strategy == "contrastive":
        return bool(card.incoming)
    if strategy == "nec":
        return card.is_residual
    if strategy == "few-shot":
        return bool(ctx.train_examples)
    if strategy in EXAMPLE_STRATEGIES:
        return bool(ctx.examples.get(strategy))
    if strategy == "keywords":
        return bool(card.keywords)
    if strategy == "grid":
        return bool(ctx.grid_cells)
    return strategy == "notes"


def make_task(strategy: str, card: CodeCard, index: int, seed: int, ctx: StrategyContext) -> Task:
    """The `index`-th task of a strategy for a code. `seed` picks few-shot examples."""
    items, language = ctx.items, ctx.language
    if strategy == "notes":
        return notes_task(card, index, items=items, language=language)
    if strategy == "grid":
        cell = ctx.grid_cells[index % len(ctx.grid_cells)]
        return grid_task(card, index, cell, items=items, language=language)
    if strategy == "few-shot":
        pool = ctx.train_examples
        examples = random.Random(seed).sample(pool, min(ctx.few_shot_k, len(pool)))
        return few_shot_task(card, examples, items=items, language=language)
    if strategy in EXAMPLE_STRATEGIES:
        pool = ctx.examples[strategy]
        examples = random.Random(seed).sample(pool, min(ctx.examples_k, len(pool)))
        make = progen_task if strategy == "progen" else retrieved_task
        return make(card, examples, items=items, language=language)
    if strategy == "nec":
        return nec_task(card, index, items=items, language=language)
    if strategy == "contrastive":
        return contrastive_task(card, index, items=items, language=language)
    if strategy == "keywords":
        return keywords_task(card, index, items=items, language=language)
    raise ValueError(f"unknown strategy '{strategy}'")


def shares(quota: int, strategies: list[str], weights: dict[str, float]) -> dict[str, int]:
    """Split a code's quota over its applicable strategies by weight (largest remainder, stable order)."""
    if not strategies:
        return {}
    raw = {s: weights.get(s, 1.0) for s in strategies}
    total = sum(raw.values()) or 1.0
    exact = {s: quota * w / total for s, w in raw.items()}
    result = {s: int(v) for s, v in exact.items()}
    left = quota - sum(result.values())
    for s in sorted(strategies, key=lambda s: (-(exact[s] - result[s]), strategies.index(s)))[:left]:
        result[s] += 1
    return result
