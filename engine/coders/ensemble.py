"""The ensemble coder: a weighted mean of its members' probabilities, the weight chosen on validation.

It gets its members as arguments (Orange3's StackedLearner) and imports no coder kind: members are
loaded through the registry, whatever their kind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from engine.coders.base import Coder, CoderBase, TrainedModel
from engine.coders.data import DataMix, build_training_data, log_loss_of, score_validation, validation_key
from engine.coders.registry import get_model, load_coder, loader_for, model_file, register_model, verify_file
from engine.errors import ModelError, TrainingError
from engine.jobs import CancelToken
from engine.store.project import Project

FORMAT = "statcoder-ensemble/1"
WEIGHT_GRID = tuple(i / 10 for i in range(11))
Distribution = dict[str, float]


def combine(distributions: Sequence[Distribution], weights: Sequence[float], k: int) -> list[tuple[str, float]]:
    mixed: dict[str, float] = {}
    for dist, weight in zip(distributions, weights):
        if weight:
            for code, prob in dist.items():
                mixed[code] = mixed.get(code, 0.0) + weight * prob
    return sorted(mixed.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class EnsembleCoder(CoderBase):
    """Implements the Coder protocol over member coders' full probability distributions."""

    kind = "ensemble"

    def __init__(self, members: list[Coder], weights: list[float]):
        self.members, self.weights = members, [float(w) for w in weights]
        self.codes = sorted({c for m in members for c in m.codes})

    def distributions(self, texts: Sequence[str]) -> list[list[Distribution]]:
        """Per member, per text: every code's probability."""
        return [[dict(p) for p in member.predict_many(list(texts), len(member.codes))] for member in self.members]

    def predict_many(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        if not texts:
            return []
        per_member = self.distributions(texts)
        return [combine([member[i] for member in per_member], self.weights, k) for i in range(len(texts))]

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleCoder":
        path = Path(path)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} is not an ensemble file ({exc})") from exc
        if spec.get("format") != FORMAT:
            raise ModelError(f"{path} is an ensemble of an unknown format ({spec.get('format')})")
        members = []
        for member in spec["members"]:
            member_path = path.parent / member["path"]
            if member.get("sha256"):
                verify_file(member_path, member["sha256"], what=f"ensemble member {member.get('model_id', '?')}")
            elif not member_path.exists():
                raise ModelError(f"ensemble member file is missing: {member_path}")
            members.append(loader_for(member["kind"])(member_path))
        return cls(members, spec["weights"])


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


def train_ensemble(project: Project, mix: DataMix, *, members: Sequence[int], name: str = "",
                   make_default: bool = True, cancel: CancelToken | None = None) -> TrainedModel:
    """Combine two trained coders of one mix; the weight is chosen on the mix's validation texts."""
    start = time.perf_counter()
    if len(members) != 2:
        raise TrainingError("an ensemble combines exactly two coders")
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
        member_preds.append([dict(p) for p in coder.predict_many(texts, len(coder.codes))])
    weight, tried = choose_weight(member_preds, gold)
    path = model_file(project, "ensemble", ".json")
    spec = {"format": FORMAT, "weights": [weight, 1 - weight],
            "members": [{"kind": r.kind, "model_id": r.id, "sha256": r.sha256,
                         "path": os.path.relpath(r.path, path.parent)} for r in records]}
    try:
        path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise TrainingError(f"the ensemble could not be written to {path.parent}: {exc.strerror or exc}") from exc
    preds = [combine([m[i] for m in member_preds], [weight, 1 - weight], 5) for i in range(len(gold))]
    validation = score_validation(preds, data.validation)
    params = {"weights": {records[0].kind: weight, records[1].kind: round(1 - weight, 4)}, "weight_grid": tried,
              "members": [r.id for r in records]}
    name = name or f"ensemble {time.strftime('%Y-%m-%d %H:%M')}"
    train_s = time.perf_counter() - start
    try:
        record, made_default, warnings = register_model(
            project, kind="ensemble", name=name, path=path, params=params, data=records[-1].data,
            train_s=train_s, validation=validation, make_default=make_default)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return TrainedModel(model_id=record.id, kind="ensemble", name=name, path=path, sha256=record.sha256,
                        train_s=train_s, params=params, composition=records[-1].data, validation=validation,
                        made_default=made_default, warnings=warnings)
