"""The local LLM as a judge: a probability per candidate code, read from the logits of a one-letter answer.

A coder proposes its k best codes; the judge is shown the text and the candidates (code, title, a few
note lines) as a lettered list and asked for one letter. One forward pass per candidate order: the
backend's `choice_logprobs` returns the log-probabilities of the option letters at the answer position
(the distribution a grammar restricted to those letters would sample from, at temperature 1).

Small models prefer some positions whatever the candidates (a 1.5B model answered B two times in three
in the issue-14 probe), so the judge is calibrated two ways, both optional:
- `orders`: the candidates are shown in several cyclic rotations and the log-probabilities averaged,
  so each candidate is seen at several positions;
- a per-position `prior`, fitted as the judge's average answer distribution per position over a
  validation set (`fit_position_prior`), is divided out before the orders are averaged.

The "channel" method (`JudgeOptions.method`) asks differently: how likely the LLM finds the text after
each candidate's card (`channel_card`), log P(text | card), normalised over the candidates. There are no
positions, so no position bias, and each card is evaluated once and kept in a KV cache
(engine.llm.channel), so a text costs one short batch. It needs the in-process backend
(`continuation_logprobs`); a server gets the letter judge.

`combine` merges the judge with the coder, `fit_combination` fits how (weight, confidence gate,
temperature) on validation texts. Everything here is pure arithmetic over a backend; the project-level
use (which coder, which texts, batch coding, pseudo-labels) is in engine.assist.judge.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Protocol, Sequence

from engine.errors import ModelError
from engine.llm.base import Prompt

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_CANDIDATES = 12


@dataclass(frozen=True)
class ChoiceScores:
    """What a backend's `choice_logprobs` returns: log-probabilities over the options (they sum to 1 as
    probabilities), and the cost of the forward pass."""

    logprobs: tuple[float, ...]
    prompt_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0


class ChoiceBackend(Protocol):
    model_name: str
    model_sha256: str
    prompt_kind: str

    def choice_logprobs(self, prompt: Prompt, options: Sequence[str]) -> ChoiceScores: ...


@dataclass(frozen=True)
class Candidate:
    """One code as the judge sees it: code, title and the essential lines of its notes."""

    code: str
    title: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class JudgeOptions:
    """How the judge asks. `orders` cyclic rotations of the candidates are scored and averaged (1 = the
    coder's order only); `seed` shuffles the first order (None keeps the coder's order)."""

    orders: int = 2
    max_lines: int = 2
    max_line_chars: int = 110
    seed: int | None = 0
    classification: str = "the classification"
    method: str = "letters"     # or "channel": log P(text | candidate's card), see `channel_card`

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JudgeVerdict:
    """The judge's view of one text. `probs[i]` belongs to `codes[i]` (the coder's order) and sums to 1.

    `raw` keeps, per order shown, the uncalibrated probability of each position, and `orders` which
    candidate stood at each position, so a position prior fitted later can be applied without asking
    the model again (`recalibrate`).
    """

    codes: tuple[str, ...]
    probs: tuple[float, ...]
    raw: tuple[tuple[float, ...], ...]
    orders: tuple[tuple[int, ...], ...]
    seconds: float = 0.0
    prompt_tokens: int = 0

    @property
    def best(self) -> tuple[str, float]:
        i = max(range(len(self.codes)), key=lambda j: self.probs[j])
        return self.codes[i], self.probs[i]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.codes, self.probs))

    def to_json(self) -> dict:
        return {"codes": list(self.codes), "probs": list(self.probs), "raw": [list(r) for r in self.raw],
                "orders": [list(o) for o in self.orders], "seconds": self.seconds,
                "prompt_tokens": self.prompt_tokens}

    @classmethod
    def uniform(cls, codes: Sequence[str]) -> "JudgeVerdict":
        """A verdict that prefers nothing: what a judge with no weight adds (see `Judge.inert`)."""
        flat = tuple(1.0 / len(codes) for _ in codes)
        return cls(tuple(codes), flat, (flat,), (tuple(range(len(codes))),))

    @classmethod
    def from_json(cls, data: dict) -> "JudgeVerdict":
        return cls(tuple(data["codes"]), tuple(data["probs"]), tuple(tuple(r) for r in data["raw"]),
                   tuple(tuple(o) for o in data["orders"]), float(data.get("seconds", 0.0)),
                   int(data.get("prompt_tokens", 0)))


# prompts --------------------------------------------------------------------------------------------
def _short(line: str, limit: int) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def judge_prompt(text: str, candidates: Sequence[Candidate], options: JudgeOptions = JudgeOptions()) -> Prompt:
    """The prompt for one order of candidates. The text comes before the list so that every order of
    one text shares the prompt prefix (system text and description), which the in-process backend
    keeps in its KV cache."""
    k = len(candidates)
    system = (f"You assign codes of {options.classification} to short descriptions of activities written on "
              "survey forms. You are shown a description and a few candidate codes with their titles and notes; "
              "choose the candidate that fits the description best.")
    shared = f'Description: "{" ".join(text.split())}"'
    rows = ["Candidate codes:"]
    for letter, cand in zip(LETTERS, candidates):
        rows.append(f"{letter}. {cand.code} {_short(cand.title, options.max_line_chars)}")
        for line in cand.lines[: options.max_lines]:
            rows.append(f"   - {_short(line, options.max_line_chars)}")
    rows.append("")
    rows.append(f"Which candidate fits the description best? Answer with one letter, {LETTERS[0]} to "
                f"{LETTERS[k - 1]}.")
    return Prompt(system=system, shared=shared, task="\n".join(rows), cue="Answer:")


def channel_card(candidate: Candidate, options: JudgeOptions = JudgeOptions()) -> str:
    """The plain-text prefix after which the channel judge reads the text: a header naming the
    classification, the candidate's code, title and first note lines, then the answer cue. The text
    follows after a space and ends with a newline (`channel_text`)."""
    rows = [f"Short answers from a survey form, each with its {options.classification} code.", "",
            f"Code {candidate.code}: {_short(candidate.title, 200)}"]
    rows += [f"- {_short(line, 200)}" for line in candidate.lines[: options.max_lines]]
    return "\n".join(rows) + "\nAnswer:"


def channel_text(text: str) -> str:
    return " " + " ".join(text.split()) + "\n"


def candidate_orders(k: int, options: JudgeOptions, text: str = "") -> list[tuple[int, ...]]:
    """Which candidate stands at each position, per order: cyclic rotations spread evenly over the k
    positions, so with `orders == k` every candidate is seen once at every position."""
    base = list(range(k))
    if options.seed is not None:
        digest = hashlib.sha256(f"judge-order:{options.seed}:{text}".encode("utf-8")).hexdigest()
        random.Random(digest).shuffle(base)
    n = max(1, min(options.orders, k))
    out = []
    for j in range(n):
        shift = (j * k) // n
        out.append(tuple(base[shift:] + base[:shift]))
    return out


# arithmetic -----------------------------------------------------------------------------------------
def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def _normalise_log(values: Sequence[float]) -> list[float]:
    total = _logsumexp(values)
    return [v - total for v in values]


def _probs_from(raw: Sequence[Sequence[float]], orders: Sequence[Sequence[int]], k: int,
                prior: Sequence[float] | None) -> tuple[float, ...]:
    """Per candidate: divide each order's position probabilities by the prior, renormalise, and average
    the log-probabilities over the orders (a geometric mean, which cancels a multiplicative bias)."""
    sums = [0.0] * k
    for probs, order in zip(raw, orders):
        logs = [math.log(max(p, 1e-12)) for p in probs]
        if prior is not None:
            logs = [lp - math.log(max(prior[pos] if pos < len(prior) else 1.0 / k, 1e-6))
                    for pos, lp in enumerate(logs)]
        logs = _normalise_log(logs)
        for pos, cand in enumerate(order):
            sums[cand] += logs[pos]
    n = max(1, len(raw))
    final = _normalise_log([s / n for s in sums])
    return tuple(math.exp(v) for v in final)


def recalibrate(verdict: JudgeVerdict, prior: Sequence[float] | None) -> JudgeVerdict:
    """The same verdict with a (new) position prior divided out; no model call."""
    probs = _probs_from(verdict.raw, verdict.orders, len(verdict.codes), prior)
    return JudgeVerdict(verdict.codes, probs, verdict.raw, verdict.orders, verdict.seconds, verdict.prompt_tokens)


def fit_position_prior(verdicts: Iterable[JudgeVerdict], k: int) -> tuple[float, ...]:
    """The judge's average answer distribution per position over many texts (orders of k candidates).

    Candidates reach each position in a balanced way (rotations of a shuffled order), so without bias
    this is flat; what is not flat is the preference for positions that calibration divides out.
    """
    totals = [0.0] * k
    n = 0
    for verdict in verdicts:
        for probs in verdict.raw:
            if len(probs) != k:
                continue
            for pos, p in enumerate(probs):
                totals[pos] += p
            n += 1
    if n == 0:
        return tuple([1.0 / k] * k)
    return tuple(t / n for t in totals)


# the judge ------------------------------------------------------------------------------------------
def judge_candidates(backend: ChoiceBackend, text: str, candidates: Sequence[Candidate], *,
                     options: JudgeOptions = JudgeOptions(), prior: Sequence[float] | None = None) -> JudgeVerdict:
    """Ask the judge about one text; the probabilities come back in the candidates' order and sum to 1."""
    k = len(candidates)
    if k < 2:
        raise ModelError("the judge needs at least two candidate codes to choose between")
    if k > MAX_CANDIDATES:
        raise ModelError(f"the judge takes at most {MAX_CANDIDATES} candidates, not {k}")
    if options.method == "channel":
        return _channel_verdict(backend, text, candidates, options)
    if options.method != "letters":
        raise ModelError(f"unknown judge method {options.method!r}: use 'letters' or 'channel'")
    if not hasattr(backend, "choice_logprobs"):
        raise ModelError(f"the {getattr(backend, 'name', 'model')} backend cannot score choices")
    letters = list(LETTERS[:k])
    raw: list[tuple[float, ...]] = []
    orders = candidate_orders(k, options, text)
    seconds = 0.0
    tokens = 0
    for order in orders:
        shown = [candidates[i] for i in order]
        started = time.perf_counter()
        scores = backend.choice_logprobs(judge_prompt(text, shown, options), letters)
        seconds += time.perf_counter() - started
        tokens += scores.prompt_tokens
        if len(scores.logprobs) != k:
            raise ModelError(f"the backend scored {len(scores.logprobs)} options, not {k}")
        logs = _normalise_log(list(scores.logprobs))
        raw.append(tuple(math.exp(v) for v in logs))
    probs = _probs_from(raw, orders, k, prior)
    return JudgeVerdict(tuple(c.code for c in candidates), probs, tuple(raw), tuple(orders), seconds, tokens)


def _channel_verdict(backend, text: str, candidates: Sequence[Candidate], options: JudgeOptions) -> JudgeVerdict:
    """The channel judge: how likely the LLM finds the text after each candidate's card, normalised over
    the candidates. No positions, so no position bias: one "order" (the coder's), nothing to divide out."""
    if not hasattr(backend, "continuation_logprobs"):
        raise ModelError(f"the {getattr(backend, 'name', 'model')} backend cannot score a text after each card "
                         "(the channel judge needs the in-process backend); use the judge method 'letters'")
    started = time.perf_counter()
    scores = backend.continuation_logprobs([channel_card(c, options) for c in candidates], channel_text(text))
    seconds = time.perf_counter() - started
    if len(scores.logprobs) != len(candidates):
        raise ModelError(f"the backend scored {len(scores.logprobs)} candidates, not {len(candidates)}")
    logs = _normalise_log(list(scores.logprobs))
    probs = tuple(math.exp(v) for v in logs)
    return JudgeVerdict(tuple(c.code for c in candidates), probs, (probs,), (tuple(range(len(candidates))),),
                        seconds, scores.evaluated_tokens)


# combination with the coder ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Combination:
    """How the judge moves the coder's probabilities.

    Over the judged candidates: p'(c) ∝ exp((log p_coder(c) + w·log p_judge(c)) / T), scaled back to the
    probability mass the coder gave the candidates, so codes outside the list keep theirs. The judge counts
    only when its own top probability reaches `gate`; below it the coder's ranking stands (T still applies).
    w = 0 and T = 1 give the coder back unchanged.
    """

    weight: float = 0.0
    gate: float = 0.0
    temperature: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def combine(coder: Sequence[tuple[str, float]], verdict: JudgeVerdict | None, combination: Combination,
            k: int | None = None) -> list[tuple[str, float]]:
    """The coder's ranking re-scored with the judge's verdict, best first (at most k entries)."""
    ranked = list(coder)
    if verdict is None:
        return ranked[:k] if k else ranked
    judged = verdict.as_dict()
    inside = [(c, p) for c, p in ranked if c in judged]
    outside = [(c, p) for c, p in ranked if c not in judged]
    if not inside:
        return ranked[:k] if k else ranked
    mass = sum(p for _, p in inside)
    use_judge = combination.weight > 0 and verdict.best[1] >= combination.gate
    temperature = max(combination.temperature, 1e-3)
    logits = []
    for code, p in inside:
        score = math.log(max(p, 1e-12))
        if use_judge:
            score += combination.weight * math.log(max(judged[code], 1e-12))
        logits.append(score / temperature)
    logs = _normalise_log(logits)
    rescored = [(code, mass * math.exp(lp)) for (code, _), lp in zip(inside, logs)]
    merged = sorted(rescored + outside, key=lambda cp: -cp[1])
    return merged[:k] if k else merged


WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
GATES = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TEMPERATURES = (0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class CombinationFit:
    combination: Combination
    n: int
    coder_top1: float
    combined_top1: float
    judge_top1: float                  # the judge alone (its best candidate)
    judge_top1_when_present: float     # the judge alone, on texts whose right code was a candidate
    candidates_hold_gold: float        # share of texts whose right code was among the candidates
    grid: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["combination"] = self.combination.to_dict()
        return data


def _top1(preds: Sequence[Sequence[tuple[str, float]]], gold: Sequence[str]) -> float:
    return sum(1 for p, g in zip(preds, gold) if p and p[0][0] == g) / max(1, len(gold))


def fit_combination(coder: Sequence[Sequence[tuple[str, float]]], verdicts: Sequence[JudgeVerdict | None],
                    gold: Sequence[str], *, weights: Sequence[float] = WEIGHTS, gates: Sequence[float] = GATES,
                    temperatures: Sequence[float] = TEMPERATURES) -> CombinationFit:
    """Weight and gate by top-1 on the given (validation) texts, ties to the smaller weight and higher gate
    (the judge moves as little as it can); then the temperature by log-loss of the right code."""
    if not (len(coder) == len(verdicts) == len(gold)):
        raise ValueError("coder predictions, verdicts and gold codes must be as many")
    grid = []
    best: tuple[float, float, float] | None = None
    chosen = Combination()
    for w in weights:
        for g in (gates if w > 0 else (0.0,)):
            comb = Combination(weight=w, gate=g)
            acc = _top1([combine(c, v, comb) for c, v in zip(coder, verdicts)], gold)
            grid.append({"weight": w, "gate": g, "top1": round(acc, 4)})
            key = (acc, -w, g)
            if best is None or key > best:
                best, chosen = key, comb
    best_t, best_loss = 1.0, math.inf
    for t in temperatures:
        comb = Combination(chosen.weight, chosen.gate, t)
        loss = 0.0
        for c, v, g in zip(coder, verdicts, gold):
            probs = dict(combine(c, v, comb))
            loss -= math.log(max(probs.get(g, 0.0), 1e-6))
        if loss < best_loss - 1e-9:
            best_t, best_loss = t, loss
    chosen = Combination(chosen.weight, chosen.gate, best_t)
    judged = [(v, g) for v, g in zip(verdicts, gold) if v is not None]
    present = [(v, g) for v, g in judged if g in v.codes]
    return CombinationFit(
        combination=chosen, n=len(gold), coder_top1=round(_top1(coder, gold), 4),
        combined_top1=round(_top1([combine(c, v, chosen) for c, v in zip(coder, verdicts)], gold), 4),
        judge_top1=round(sum(v.best[0] == g for v, g in judged) / max(1, len(judged)), 4),
        judge_top1_when_present=round(sum(v.best[0] == g for v, g in present) / max(1, len(present)), 4),
        candidates_hold_gold=round(len(present) / max(1, len(judged)), 4), grid=grid)
