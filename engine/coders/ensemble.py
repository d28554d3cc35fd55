"""The ensemble coder: a weighted mean of fastText's and the embedding coder's probabilities, weight chosen on validation."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from engine.coders.base import CODER_LOADERS, Coder, choose_default_model, get_model, load_coder
from engine.errors import ModelError
from engine.jobs import CancelToken, ProgressCallback
from engine.store.project import Project
from engine.coders.training import DataMix, TrainOptions, _validation_key, build_training_data, train_model
from engine.coders.embedding.cache import embed_cached
from engine.coders.embedding.coder import EmbeddingCoder
from engine.coders.embedding.training import EmbeddingTrainOptions, log_loss_of, model_file, register_model, train_embedding_model

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


class EnsembleCoder:
    """Implements the Coder protocol over member coders' full probability distributions."""

    kind = "ensemble"

    def __init__(self, members: list[Coder], weights: list[float]):
        self.members, self.weights = members, [float(w) for w in weights]
        self.codes = sorted({c for m in members for c in m.codes})

    def distributions(self, texts: Sequence[str]) -> list[list[Distribution]]:
        """Per member, per text: every code's probability."""
        return [[dict(p) for p in member.predict_many(list(texts), len(member.codes))] for member in self.members]

    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        return self.predict_many([text], k)[0]

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
            loader = CODER_LOADERS.get(member["kind"])
            if loader is None:
                raise ModelError(f"ensemble member of kind '{member['kind']}' cannot be loaded")
            member_path = path.parent / member["path"]
            if not member_path.exists():
                raise ModelError(f"ensemble member file is missing: {member_path}")
            members.append(loader(member_path))
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


def train_ensemble(project: Project, mix: DataMix, *, fasttext_id: int | None = None, embedding_id: int | None = None,
                   embedding_options: EmbeddingTrainOptions | None = None, name: str = "",
                   make_default: bool = True, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> tuple[int, dict[str, Any]]:
    """fastText + embedding coder on one mix (trained now unless given), weight chosen on the mix's validation."""
    start = time.perf_counter()
    data = build_training_data(project, mix)
    if not data.validation:
        raise ModelError("an ensemble needs validation texts to choose its weights; this mix has none")
    set_key = _validation_key(data.validation)
    if fasttext_id is None:
        fasttext_id = train_model(project, mix, TrainOptions(make_default=False), cancel=cancel).model_id
    if embedding_id is None:
        options = embedding_options or EmbeddingTrainOptions()
        options.make_default = False
        embedding_id = train_embedding_model(project, mix, options, progress=progress, cancel=cancel).model_id
    records, coders = [], []
    for model_id, kind in ((fasttext_id, "fasttext"), (embedding_id, "embedding")):
        record = get_model(project, model_id)
        if record.kind != kind:
            raise ModelError(f"model {model_id} is a {record.kind} model, not {kind}")
        if (record.validation or {}).get("set") != set_key:
            raise ModelError(f"model {model_id} was validated on other texts than this mix's; train it on the same mix")
        records.append(record)
        coders.append(load_coder(project, model_id)[0])
    texts, gold = [t for t, _ in data.validation], [c for _, c in data.validation]
    ft_preds = [dict(p) for p in coders[0].predict_many(texts, len(coders[0].codes))]
    emb: EmbeddingCoder = coders[1]  # type: ignore[assignment]
    vectors = embed_cached(project, emb.embedder, texts, cancel=cancel)
    emb_preds = [dict(p) for p in emb.predict_vectors(vectors, len(emb.codes))]
    weight, tried = choose_weight([ft_preds, emb_preds], gold)
    path = model_file(project, "ensemble", ".json")
    spec = {"format": FORMAT, "weights": [weight, 1 - weight],
            "members": [{"kind": r.kind, "model_id": r.id, "sha256": r.sha256,
                         "path": os.path.relpath(r.path, path.parent)} for r in records]}
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    ensemble = EnsembleCoder(coders, [weight, 1 - weight])
    preds = [combine([f, e], ensemble.weights, 5) for f, e in zip(ft_preds, emb_preds)]
    top1 = sum(bool(p) and p[0][0] == g for p, g in zip(preds, gold)) / len(gold)
    top5 = sum(g in {c for c, _ in p} for p, g in zip(preds, gold)) / len(gold)
    validation = {"set": set_key, "n": len(gold), "top1": round(top1, 4), "top5": round(top5, 4)}
    params = {"weights": {"fasttext": weight, "embedding": round(1 - weight, 4)}, "weight_grid": tried,
              "members": [fasttext_id, embedding_id]}
    model_id, _ = register_model(project, kind="ensemble", name=name or f"ensemble {time.strftime('%Y-%m-%d %H:%M')}",
                                 path=path, params=params, data=records[1].data,
                                 train_s=time.perf_counter() - start, validation=validation)
    if make_default:
        choose_default_model(project)
    return model_id, {"validation": validation, **params}
