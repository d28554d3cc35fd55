"""The ensemble coder: its members' probabilities combined, the weights chosen on validation or given.

Two combinations: 'mean' (a weighted mean of probabilities; two members, the weight chosen on validation)
and 'log' (a weighted product, sum of w x log p renormalised, for any number of members: a code must
look right to every member). It gets its members as arguments (Orange3's StackedLearner) and imports no
coder kind: members are loaded through the registry, whatever their kind.

A 'log' ensemble of a classification whose titles lead with the activity also adds the title-heads term
(engine.coders.heads) to its log score: a text that says 'wholesale' moves toward the codes whose path is
'Wholesale ...'. The heads and their weight are stored in the ensemble's file (format 2).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.coders.base import Coder, CoderBase, TrainedModel, held_out_view
from engine.coders.calibration import fit_temperature
from engine.coders.data import DataMix, build_training_data, log_loss_of, score_validation, validation_key
from engine.coders.heads import BETA_GRID, ZERO_REAL_BETA, TitleHeads, activity_titles, code_heads
from engine.coders.registry import (get_model, load_coder, loader_for, models_folder, register_trained,
                                    verify_file, write_model_file)
from engine.errors import ModelError, TrainingError
from engine.jobs import CancelToken
from engine.store.project import Project

FORMAT = "statcoder-ensemble/2"      # /2: may hold title heads; /1 files load as they did
FORMATS = ("statcoder-ensemble/1", FORMAT)
COMBINATIONS = ("mean", "log")
WEIGHT_GRID = tuple(i / 10 for i in range(11))
# 'log': the first member's weight is 1; each further member's weight is chosen from this grid on validation.
LOG_WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)
LOG_FLOOR = 1e-6            # the probability of a code a member does not rank, in the product
# Without real texts, the weights of a 'log' ensemble of these members, in this order. A carve of the
# training lines chooses weights that favour the coders that fit synthetic text ((1, 1, 0.5, 1): 58.0 % on
# the development half of all of NACE, zero real); these were chosen there, with the lexical coder's words
# and 4-grams: 59.6 % / 83.3 % against 56.1 % / 81.2 % for the kNN alone
# (bench/results/ensemble-zero-real-lexical-grams4-dev-nace-full.md; with a lexical coder of words only,
# (1, 0.25, 0.25, 0.25) was chosen: 58.9 %, and these weights give it 58.7 %).
ZERO_REAL_MEMBERS = ("knn", "embedding", "fasttext", "lexical")
ZERO_REAL_LOG_WEIGHTS = (1.0, 0.1, 0.1, 0.25)
# Every member set with zero-real weights of its own: the default four, and the three of the previous release
# (58.2 % on the same development half; bench/results/ensemble-zero-real-dev-nace-full.md).
ZERO_REAL_WEIGHTS: dict[tuple[str, ...], tuple[float, ...]] = {
    ZERO_REAL_MEMBERS: ZERO_REAL_LOG_WEIGHTS,
    ("knn", "embedding", "fasttext"): (1.0, 0.5, 0.25),
}
Distribution = dict[str, float]


def combine(distributions: Sequence[Distribution], weights: Sequence[float], k: int) -> list[tuple[str, float]]:
    mixed: dict[str, float] = {}
    for dist, weight in zip(distributions, weights):
        if weight:
            for code, prob in dist.items():
                mixed[code] = mixed.get(code, 0.0) + weight * prob
    return sorted(mixed.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def combine_log(distributions: Sequence[Distribution], weights: Sequence[float], k: int,
                temperature: float = 1.0) -> list[tuple[str, float]]:
    """softmax(sum of weight x log p / temperature) over every code any member ranks; an unranked code counts
    LOG_FLOOR. A product of probabilities is sharper than its members: the temperature is fitted on validation."""
    codes = sorted({c for d in distributions for c in d})
    if not codes:
        return []
    score = {c: sum(w * math.log(max(d.get(c, 0.0), LOG_FLOOR)) for d, w in zip(distributions, weights) if w)
             for c in codes}
    top = max(score.values())
    mass = {c: math.exp((v - top) / temperature) for c, v in score.items()}
    total = sum(mass.values())
    return sorted(((c, m / total) for c, m in mass.items()), key=lambda kv: (-kv[1], kv[0]))[:k]


def combine_log_many(per_member: Sequence[Sequence[Distribution]], weights: Sequence[float], k: int,
                     temperature: float, codes: Sequence[str],
                     extra: np.ndarray | None = None) -> list[list[tuple[str, float]]]:
    """combine_log for many texts at once, in numpy (the coding panel's latency): the same ranking and
    probabilities, `codes` the sorted union of the members' codes. `extra` (texts, codes) is added to the
    log score before the temperature (the title-heads term)."""
    index = {c: j for j, c in enumerate(codes)}
    n = len(per_member[0]) if per_member else 0
    score = np.zeros((n, len(codes)))
    ranked = np.zeros((n, len(codes)), dtype=bool)
    floor = math.log(LOG_FLOOR)
    for member, weight in zip(per_member, weights):
        logs = np.full((n, len(codes)), floor)
        for i, dist in enumerate(member):
            if dist:
                cols = np.fromiter((index[c] for c in dist), dtype=np.int64, count=len(dist))
                logs[i, cols] = np.log(np.maximum(np.fromiter(dist.values(), dtype=np.float64, count=len(dist)),
                                                  LOG_FLOOR))
                ranked[i, cols] = True
        if weight:
            score += weight * logs
    if extra is not None:
        score += extra
    out = []
    for i in range(n):
        cols = np.flatnonzero(ranked[i])
        if not len(cols):
            out.append([])
            continue
        row = score[i, cols]
        mass = np.exp((row - row.max()) / temperature)
        mass /= mass.sum()
        # a stable sort over code order: ties go to the smaller code, as in combine_log
        top = np.argsort(-mass, kind="stable")[:k]
        out.append([(codes[cols[j]], float(mass[j])) for j in top])
    return out


class EnsembleCoder(CoderBase):
    """Implements the Coder protocol over member coders' full probability distributions."""

    kind = "ensemble"

    def __init__(self, members: list[Coder], weights: list[float], combination: str = "mean",
                 temperature: float = 1.0, heads: TitleHeads | None = None):
        if combination not in COMBINATIONS:
            raise ModelError(f"unknown ensemble combination '{combination}'; choose one of {', '.join(COMBINATIONS)}")
        if len(weights) != len(members):
            raise ModelError(f"an ensemble of {len(members)} members needs {len(members)} weights, not {len(weights)}")
        self.members, self.weights, self.combination = members, [float(w) for w in weights], combination
        self.temperature = float(temperature)
        self.codes = sorted({c for m in members for c in m.codes})
        if heads is not None and combination != "log":
            raise ModelError("title heads add to a 'log' ensemble's score; a 'mean' ensemble has none")
        self.heads = heads

    def held_out(self) -> "EnsembleCoder":
        """This ensemble over its members' held-out views (itself when none absorbed validation lines)."""
        views = [held_out_view(m) for m in self.members]
        if all(v is m for v, m in zip(views, self.members)):
            return self
        return EnsembleCoder(views, self.weights, self.combination, self.temperature, self.heads)

    def distributions(self, texts: Sequence[str]) -> list[list[Distribution]]:
        """Per member, per text: every code's probability. Members on one sentence-embedding model share its vectors."""
        texts = list(texts)
        vectors: dict[int, Any] = {}
        out = []
        for member in self.members:
            embedder = getattr(member, "embedder", None)
            if embedder is not None and hasattr(member, "predict_vectors"):
                if id(embedder) not in vectors:
                    vectors[id(embedder)] = (embedder.embed_one(texts[0])[None, :] if len(texts) == 1
                                             else embedder.embed(texts))
                preds = member.predict_vectors(vectors[id(embedder)], len(member.codes))
            else:
                preds = member.predict_many(texts, len(member.codes))
            out.append([dict(p) for p in preds])
        return out

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        if not texts:
            return []
        per_member = self.distributions(texts)
        if self.combination == "log":
            extra = self.heads.term(texts, self.codes) if self.heads is not None else None
            return combine_log_many(per_member, self.weights, k, self.temperature, self.codes, extra)
        return [combine([member[i] for member in per_member], self.weights, k) for i in range(len(texts))]

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleCoder":
        path = Path(path)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} is not an ensemble file ({exc})") from exc
        if spec.get("format") not in FORMATS:
            raise ModelError(f"{path} is an ensemble of an unknown format ({spec.get('format')})")
        members = []
        for member in spec["members"]:
            member_path = path.parent / member["path"]
            if member.get("sha256"):
                verify_file(member_path, member["sha256"], what=f"ensemble member {member.get('model_id', '?')}")
            elif not member_path.exists():
                raise ModelError(f"ensemble member file is missing: {member_path}")
            members.append(loader_for(member["kind"])(member_path))
        heads = TitleHeads.from_json(spec["heads"]) if spec.get("heads") else None
        return cls(members, spec["weights"], spec.get("combination", "mean"), spec.get("temperature", 1.0), heads)


def choose_weight(member_preds: Sequence[Sequence[Distribution]], gold: Sequence[str],
                  grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, list[dict[str, Any]]]:
    """The weight of the first member (the second gets 1 - w) with the best validation top-1, then log-loss."""
    tried, best, best_key = [], 0.0, None
    for w in grid:
        preds = [combine([member_preds[0][i], member_preds[1][i]], [w, 1 - w], 5) for i in range(len(gold))]
        top1 = sum(bool(p) and p[0][0] == g for p, g in zip(preds, gold)) / len(gold)
        nll = log_loss_of(preds, gold)
        tried.append({"weight": w, "top1": round(top1, 4), "nll": round(nll, 4)})
        key = (round(top1, 6), -nll)
        if best_key is None or key > best_key:
            best, best_key = w, key
    return best, tried


def log_matrix(member_preds: Sequence[Sequence[Distribution]], codes: Sequence[str]) -> np.ndarray:
    """(members, texts, codes) log-probabilities, LOG_FLOOR where a member does not rank a code."""
    index = {c: j for j, c in enumerate(codes)}
    out = np.full((len(member_preds), len(member_preds[0]) if member_preds else 0, len(codes)), math.log(LOG_FLOOR))
    for m, preds in enumerate(member_preds):
        for i, dist in enumerate(preds):
            for code, prob in dist.items():
                out[m, i, index[code]] = math.log(max(prob, LOG_FLOOR))
    return out


def validation_codes(member_preds: Sequence[Sequence[Distribution]], gold: Sequence[str]) -> list[str]:
    """Every code the members or the gold labels name, sorted: the columns of validation_logs."""
    return sorted({c for preds in member_preds for d in preds for c in d} | set(gold))


def validation_logs(member_preds: Sequence[Sequence[Distribution]],
                    gold: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The members' log-probabilities over every code they or the gold labels name, and the gold indices."""
    codes = validation_codes(member_preds, gold)
    index = {c: j for j, c in enumerate(codes)}
    return log_matrix(member_preds, codes), np.array([index[g] for g in gold])


def top1_and_nll(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Top-1 accuracy and mean log-loss of (texts, codes) log scores, renormalised, against gold indices."""
    score = score - score.max(axis=1, keepdims=True)
    logp = score - np.log(np.exp(score).sum(axis=1, keepdims=True))
    return float((score.argmax(axis=1) == y).mean()), float(-logp[np.arange(len(y)), y].mean())


def choose_log_weights(member_preds: Sequence[Sequence[Distribution]], gold: Sequence[str],
                       grid: Sequence[float] = LOG_WEIGHT_GRID) -> tuple[list[float], list[dict[str, Any]]]:
    """Weights for 'log' (the first member 1, the others from `grid`) with the best validation top-1, then log-loss."""
    logs, y = validation_logs(member_preds, gold)
    tried, best, best_key = [], [1.0] * len(member_preds), None
    for rest in itertools.product(grid, repeat=len(member_preds) - 1):
        weights = [1.0, *rest]
        top1, nll = top1_and_nll(np.tensordot(np.array(weights), logs, axes=1), y)
        tried.append({"weights": weights, "top1": round(top1, 4), "nll": round(nll, 4)})
        key = (round(top1, 6), -nll)
        if best_key is None or key > best_key:
            best, best_key = weights, key
    return best, tried


def log_temperature(member_preds: Sequence[Sequence[Distribution]], gold: Sequence[str],
                    weights: Sequence[float], extra: np.ndarray | None = None) -> float:
    """The temperature of a 'log' ensemble that minimises its log-loss on the validation texts; `extra`
    (texts, validation_codes) is added to the score first (the title-heads term)."""
    logs, y = validation_logs(member_preds, gold)
    score = np.tensordot(np.array(weights), logs, axes=1)
    return fit_temperature(score + extra if extra is not None else score, y)


def choose_heads_beta(member_preds: Sequence[Sequence[Distribution]], gold: Sequence[str], weights: Sequence[float],
                      heads: TitleHeads, texts: Sequence[str],
                      grid: Sequence[float] = BETA_GRID) -> tuple[float, list[dict[str, Any]]]:
    """The title-heads weight with the best validation top-1 (then log-loss) at the chosen member weights."""
    logs, y = validation_logs(member_preds, gold)
    codes = validation_codes(member_preds, gold)
    base = np.tensordot(np.array(weights), logs, axes=1)
    tried, best, best_key = [], 0.0, None
    for beta in grid:
        top1, nll = top1_and_nll(base + TitleHeads(heads.heads, beta).term(texts, codes), y)
        tried.append({"beta": beta, "top1": round(top1, 4), "nll": round(nll, 4)})
        key = (round(top1, 6), -nll)
        if best_key is None or key > best_key:
            best, best_key = beta, key
    return best, tried


def member_label(record) -> str:
    """How a member is named in the weights: its kind, or 'knn' for the nearest-neighbour embedding coder."""
    if record.kind == "embedding" and (record.params or {}).get("mode") == "knn":
        return "knn"
    return record.kind


def train_ensemble(project: Project, mix: DataMix, *, members: Sequence[int], name: str = "",
                   make_default: bool = True, cancel: CancelToken | None = None, combination: str = "mean",
                   weights: Sequence[float] | None = None, heads: float | None = None) -> TrainedModel:
    """Combine trained coders of one mix; the weights are chosen on the mix's validation texts unless given.

    `heads`, a 'log' ensemble's title-heads weight (engine.coders.heads): None decides by the classification
    (titles that lead with the activity: ZERO_REAL_BETA without real text, else chosen on validation from
    BETA_GRID; otherwise none); a number is that weight, 0 none.

    'mean' combines exactly two coders; 'log' any number. Without real text (validation carved from the
    training lines) a 'log' ensemble of (knn, embedding, fasttext, lexical), or of the first three, takes
    the weights ZERO_REAL_WEIGHTS holds for them instead of choosing on that carve. A member that joined its validation lines to
    its references after scoring them (a zero-real kNN) is validated here as it was before (held_out()),
    so the ensemble's validation score is not read off texts its member has seen.
    """
    start = time.perf_counter()
    if combination not in COMBINATIONS:
        raise TrainingError(f"unknown ensemble combination '{combination}'; choose one of {', '.join(COMBINATIONS)}")
    if combination == "mean" and len(members) != 2:
        raise TrainingError("a 'mean' ensemble combines exactly two coders; use 'log' for more")
    if len(members) < 2 or len(set(members)) != len(members):
        raise TrainingError("an ensemble combines at least two different coders")
    if weights is not None:
        weights = [float(w) for w in weights]
        if len(weights) != len(members) or any(w < 0 or not math.isfinite(w) for w in weights) or not any(weights):
            raise TrainingError(f"give one weight >= 0 per member ({len(members)}), not all zero")
    if heads is not None and (not math.isfinite(heads) or heads < 0):
        raise TrainingError(f"the title-heads weight must be a number >= 0, not {heads}")
    if heads and combination != "log":
        raise TrainingError("title heads add to a 'log' ensemble's score; a 'mean' ensemble has none")
    data = build_training_data(project, mix)
    if not data.validation:
        raise TrainingError("an ensemble needs validation texts to choose its weights; this mix has none")
    set_key = validation_key(data.validation)
    records, coders = [], []
    for model_id in members:
        record = get_model(project, model_id)
        if (record.validation or {}).get("set") != set_key:
            raise TrainingError(f"model {model_id} was validated on other texts than this mix's; "
                                "train it on the same mix")
        records.append(record)
        coders.append(load_coder(project, model_id)[0])
    texts, gold = [t for t, _ in data.validation], [c for _, c in data.validation]
    member_preds = []
    for coder in coders:
        if cancel is not None:
            cancel.check()
        scorer = held_out_view(coder)
        member_preds.append([dict(p) for p in scorer.predict_many(texts, len(scorer.codes))])
    labels: list[str] = []
    for record in records:
        label = member_label(record)
        labels.append(label if label not in labels else f"{label} {record.id}")
    zero_real = data.composition.get("validation_from") == "training data"
    if weights is not None:
        chosen, tried, source = weights, [], "given"
    elif combination == "log" and zero_real and tuple(labels) in ZERO_REAL_WEIGHTS:
        # No real text to weigh them on: a carve of the training lines favours the coders that fit synthetic text.
        chosen, tried, source = list(ZERO_REAL_WEIGHTS[tuple(labels)]), [], "zero-real default"
    elif combination == "mean":
        first, tried = choose_weight(member_preds, gold)
        chosen, source = [first, round(1 - first, 4)], "validation"
    else:
        chosen, tried = choose_log_weights(member_preds, gold)
        source = "validation"
    union = sorted({c for coder in coders for c in coder.codes})
    title_heads, heads_tried, heads_from = None, [], "off"
    if combination == "log" and (heads or (heads is None and activity_titles(project))):
        title_heads = TitleHeads(code_heads(project, union), heads or ZERO_REAL_BETA)
        if heads:
            heads_from = "given"
        elif zero_real:
            heads_from = "zero-real default"
        else:
            beta, heads_tried = choose_heads_beta(member_preds, gold, chosen, title_heads, texts)
            title_heads, heads_from = TitleHeads(title_heads.heads, beta), "validation"
        if not title_heads.beta:
            title_heads = None
    extra = title_heads.term(texts, validation_codes(member_preds, gold)) if title_heads is not None else None
    temperature = log_temperature(member_preds, gold, chosen, extra) if combination == "log" else 1.0
    folder = models_folder(project)     # where the ensemble's file goes: members are named relative to it
    spec = {"format": FORMAT, "combination": combination, "weights": chosen, "temperature": temperature,
            "members": [{"kind": r.kind, "model_id": r.id, "sha256": r.sha256,
                         "path": os.path.relpath(r.path, folder)} for r in records],
            **({"heads": title_heads.to_json()} if title_heads is not None else {})}
    path = write_model_file(project, "ensemble", ".json",
                            lambda target: target.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8"),
                            "ensemble")
    if combination == "log":
        preds = combine_log_many(member_preds, chosen, 5, temperature, union,
                                 title_heads.term(texts, union) if title_heads is not None else None)
    else:
        preds = [combine([m[i] for m in member_preds], chosen, 5) for i in range(len(gold))]
    validation = score_validation(preds, data.validation)
    params = {"weights": dict(zip(labels, chosen)), "combination": combination, "weights_from": source,
              "temperature": round(temperature, 5),
              "weight_grid": tried, "members": [r.id for r in records],
              "title_heads": {"beta": title_heads.beta if title_heads is not None else 0.0, "from": heads_from,
                              "grid": heads_tried}}
    name = name or f"ensemble {time.strftime('%Y-%m-%d %H:%M')}"
    train_s = time.perf_counter() - start
    return register_trained(project, kind="ensemble", name=name, path=path, params=params,
                            composition=records[-1].data, train_s=train_s, validation=validation,
                            make_default=make_default)
