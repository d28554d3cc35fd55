"""Published sample-selection methods as curation rules: SuperGen, SunGen (simplified), FuseGen.

Each is a pure function from samples (and what it needs: logprobs, vectors, per-model groups) to `Hit`s,
like the rules in engine.curate.rules; engine.curate.store runs them when their option is set and
stores the flags, so a rejected sample says which method rejected it and why, and can be overridden.

- low_logprob (SuperGen, Meng et al. 2022): keep the samples the generator was surest of. The score
  is the phrase's length-normalised generation log-probability: the writer sums the log-probabilities
  of the reply's tokens that spelled the phrase (`samples.logprob`) and counts them
  (`samples.logprob_tokens`), so the phrases of one reply get scores of their own. Rows without that
  count (written before phrases were scored, a phrase not found in its reply, a backend without
  per-token log-probabilities) carry the request's logprob and are scored per request (logprob /
  completion tokens of the whole reply). Within a code, the lowest `share` of samples is flagged.
- low_influence (SunGen, Gao et al. 2023, simplified): SunGen learns per-sample weights so that a model
  trained on the weighted synthetic set fits a small clean set, by meta-gradients through training.
  Simplified here to one step of that meta-gradient at a model trained on every synthetic sample: a
  linear softmax coder over sentence embeddings; the derivative of the clean set's loss with respect
  to a sample's weight, after one gradient step, is -lr * g_i . G_clean (g_i: the sample's gradient,
  G_clean: the clean set's), so the score is g_i . G_clean: positive where up-weighting the sample
  lowers the clean loss. Samples whose gradient points against the clean set's (the noisy ones)
  get the lowest score; within a code, the lowest `share` is flagged. The clean set is the notes
  lines (and the real-train texts when curation may use them).
- model_disagreement (FuseGen, Zou et al. 2024): with samples from two or more generation models, a
  fastText coder is trained on the notes plus each model's samples; a sample is flagged when no coder
  trained on another model's samples ranks its code within the top k (cross-model agreement).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.curate.rules import Hit, Sample

METHOD_RULES = ("low_logprob", "low_influence", "model_disagreement")


@dataclass(frozen=True)
class MethodOptions:
    """Which selection methods run during curation; all off by default (bench/results/methods-dev-*)."""

    supergen_share: float = 0.0       # flag this share of each code's samples with the lowest logprob per token
    sungen_share: float = 0.0         # flag this share of each code's samples with the lowest clean-set influence
    sungen_c: float = 100.0           # inverse L2 strength of SunGen's linear coder
    fusegen_top_k: int = 0            # > 0: flag samples no other model's coder ranks within this top k

    def describe(self) -> dict:
        return {"supergen_share": self.supergen_share, "sungen_share": self.sungen_share,
                "sungen_c": self.sungen_c, "fusegen_top_k": self.fusegen_top_k}

    def check(self) -> None:
        from engine.errors import StatcoderError
        for name in ("supergen_share", "sungen_share"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise StatcoderError(f"{name.replace('_', ' ')} must be at least 0 and below 1, not {value}")
        if self.fusegen_top_k < 0:
            raise StatcoderError(f"the FuseGen top k must be 0 (off) or more, not {self.fusegen_top_k}")


def lowest_share(scores: dict[int, float], code_of: dict[int, str], share: float) -> dict[int, int]:
    """Per code, the ids of the lowest-scoring `share` of samples (floor; ties broken by id), with their rank."""
    by_code: dict[str, list[int]] = defaultdict(list)
    for sid in scores:
        by_code[code_of[sid]].append(sid)
    out: dict[int, int] = {}
    for ids in by_code.values():
        ids.sort(key=lambda sid: (scores[sid], sid))
        for rank, sid in enumerate(ids[: math.floor(share * len(ids))]):
            out[sid] = rank
    return out


def supergen_scores(rows: Sequence[tuple[int, float | None, int | None, int | None]]) -> dict[int, float]:
    """(sample id, logprob, completion tokens, logprob tokens) -> logprob per token.

    With `logprob tokens` (the phrase's own tokens) the score is the phrase's; without (NULL: an older
    row, or one stored with its request's logprob) it is logprob / completion tokens, the request's.
    Samples without a logprob are left out."""
    return {sid: lp / max(1, phrase_tokens if phrase_tokens else (tokens or 1))
            for sid, lp, tokens, phrase_tokens in rows if lp is not None}


def low_logprob(samples: Sequence[Sample], scores: dict[int, float], *, share: float,
                per_request: frozenset[int] | set[int] = frozenset()) -> list[Hit]:
    """`per_request`: the samples whose score is their request's (no per-phrase count), said so in the reason."""
    code_of = {s.id: s.code for s in samples}
    known = {sid: v for sid, v in scores.items() if sid in code_of}
    return [Hit(sid, "low_logprob", f"generation log-probability {known[sid]:.3f} per token of "
                f"{'its request' if sid in per_request else 'the phrase'}, among the lowest {share:.0%} of "
                f"{code_of[sid]}'s samples")
            for sid in sorted(lowest_share(known, code_of, share))]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sungen_scores(train_x: np.ndarray, train_codes: Sequence[str], clean_x: np.ndarray, clean_codes: Sequence[str],
                  *, c: float = 100.0, max_iter: int = 200) -> np.ndarray:
    """Per synthetic sample: g_i . G_clean at a linear softmax coder trained on all synthetic samples.

    Positive: one gradient step on the sample lowers the clean set's loss; negative: it raises it.
    """
    from engine.coders.embedding.classifier import fit_logistic

    classes = sorted(set(train_codes))
    index = {code: i for i, code in enumerate(classes)}
    y = np.array([index[code] for code in train_codes], dtype=np.int64)
    linear = fit_logistic(train_x, y, len(classes), c=c, max_iter=max_iter)
    err = _softmax(train_x @ linear.weights + linear.bias)
    err[np.arange(len(y)), y] -= 1.0                       # dLoss/dlogits of each synthetic sample
    known = [i for i, code in enumerate(clean_codes) if code in index]
    if not known:
        return np.zeros(len(y), dtype=np.float32)
    cx = clean_x[known]
    cy = np.array([index[clean_codes[i]] for i in known], dtype=np.int64)
    cerr = _softmax(cx @ linear.weights + linear.bias)
    cerr[np.arange(len(cy)), cy] -= 1.0
    grad_w = cx.T @ cerr / len(cy)                          # the clean set's gradient (dim x classes)
    grad_b = cerr.mean(axis=0)
    # g_i . G = x_i^T G_w e_i + e_i . G_b, for every i at once
    return ((train_x @ grad_w) * err).sum(axis=1) + err @ grad_b


def low_influence(samples: Sequence[Sample], scores: dict[int, float], *, share: float) -> list[Hit]:
    code_of = {s.id: s.code for s in samples}
    known = {sid: v for sid, v in scores.items() if sid in code_of}
    return [Hit(sid, "low_influence", f"training on it moves the coder away from the clean set (influence "
                f"{known[sid]:.2e}), among the lowest {share:.0%} of {code_of[sid]}'s samples")
            for sid in sorted(lowest_share(known, code_of, share))]


def model_disagreement(samples: Sequence[Sample], model_of: dict[int, str], notes: Sequence[tuple[str, str]], *,
                       top_k: int, params=None) -> list[Hit]:
    """FuseGen's cross-model agreement. Fewer than two models: nothing to compare, no hits."""
    import dataclasses

    from engine.coders.fasttext.model import FastTextCoder
    from engine.coders.fasttext.training import DEFAULT_PARAMS, SMALL_SET_BUCKETS

    # One thread keeps the coders deterministic; the small bucket count keeps them quick.
    params = params or dataclasses.replace(DEFAULT_PARAMS, bucket=SMALL_SET_BUCKETS, thread=1)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[model_of.get(s.id, "")].append(s)
    if len(groups) < 2:
        return []
    coders = {m: FastTextCoder.train(list(notes) + [(s.text, s.code) for s in group], params)
              for m, group in groups.items()}
    hits = []
    for model, group in groups.items():
        agree = [0] * len(group)
        for other, coder in coders.items():
            if other == model:
                continue
            for i, pred in enumerate(coder.predict_many([s.text for s in group], k=top_k)):
                agree[i] += group[i].code in {code for code, _ in pred}
        hits += [Hit(s.id, "model_disagreement", f"no coder trained on another model's samples ranks {s.code} "
                     f"in its top {top_k} ({len(groups) - 1} other model(s))")
                 for s, n in zip(group, agree) if n == 0]
    return sorted(hits, key=lambda h: h.sample_id)
