"""The LLM judge in a project: a coder's k best codes re-ranked by the local LLM, where the coder is unsure.

- `fit_judge` calibrates the judge for the project's coder on validation texts (the real validation
  carve when the project has real coded texts, otherwise held-out synthetic samples, otherwise held-out
  note lines): the position prior, the combination (weight, gate, temperature) and the pseudo-label
  threshold; the result is stored in the project (`judge` setting) with the coder's and the LLM's sha256.
- `Judge` answers for one text (`second_opinion`, the Code page's on-demand key) and re-ranks a coder's
  prediction (`rerank`), judging only texts whose top probability is below the auto-code threshold.
- `BatchJudge` is the batch-coding hook (engine.assist.coding.batch_code_csv): every verdict is appended to a
  journal beside the output file, so a cancelled judged batch resumes without judging a row twice.

The mechanism itself (prompt, logits, position calibration, combination) is engine.llm.judge.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from engine.coders.base import held_out_view
from engine.coders.registry import ModelRecord, load_coder
from engine.errors import ModelError, StatcoderError, with_hint
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.llm.backends import BackendSettings, HardwareSettings
from engine.llm.judge import (Candidate, Combination, CombinationFit, JudgeOptions, JudgeVerdict, combine, fit_combination,
                        fit_position_prior, judge_candidates, recalibrate)
from engine.classification import Code
from engine.classification.note_lines import code_lines
from engine.store.cache import ProjectCache
from engine.store.project import Project
from engine.text import normalise_key

JUDGE_SETTING = "judge"
DEFAULT_K = 5
DEFAULT_THRESHOLD = 0.5
# The channel judge won on the NACE development texts (bench/results/judge-nace-full-channel.md); the
# letter judge is what a server backend can do.
DEFAULT_METHOD = "channel"
# Note lines shown per candidate, per method: the letter judge lists k candidates in one prompt, the
# channel judge reads one card at a time.
DEFAULT_LINES = {"letters": 2, "channel": 3}
# Unfitted judge: it counts as much as the coder; fit_judge replaces this with what validation says.
UNFITTED = Combination(weight=1.0, gate=0.0, temperature=1.0)


@dataclass
class JudgeConfig:
    """How the judge is used in this project; `fitted` is False for the defaults (no validation yet)."""

    k: int = DEFAULT_K
    orders: int = 2
    max_lines: int = 2
    method: str = DEFAULT_METHOD               # "channel" (log P(text | card)) or "letters" (pick a letter)
    threshold: float = DEFAULT_THRESHOLD       # judge only texts whose coder top probability is below this
    prior: list[float] | None = None
    combination: Combination = field(default_factory=lambda: UNFITTED)
    label_threshold: float | None = None       # pseudo-labels at or above this combined probability
    coder_model_id: int | None = None
    coder_sha256: str | None = None
    judge_model_name: str | None = None
    judge_model_sha256: str | None = None
    fitted: bool = False
    fit: dict = field(default_factory=dict)    # what validation said (CombinationFit and the costs)

    def options(self, classification: str = "the classification") -> JudgeOptions:
        return JudgeOptions(orders=self.orders, max_lines=self.max_lines, classification=classification,
                            method=self.method)

    def to_json(self) -> dict:
        data = asdict(self)
        data["combination"] = self.combination.to_dict()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "JudgeConfig":
        data = dict(data)
        data["combination"] = Combination(**data.get("combination", {}))
        data.setdefault("method", "letters")       # stored before there was a choice
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def stored_config(project: Project) -> JudgeConfig | None:
    data = project.get_setting(JUDGE_SETTING)
    return JudgeConfig.from_json(data) if data else None


def judge_backend_settings(model: str | None = None, *, threads: int = 2, n_ctx: int = 2048,
                           gpu_layers: int = 0) -> BackendSettings:
    """In-process settings for the judge: a registered model's name/sha256, a GGUF path, or the default."""
    from engine.llm.registry import add_model, get_default_model, get_model

    if model is None:
        info = get_default_model()
        if info is None:
            raise with_hint(ModelError("the judge needs a local LLM"), "add_llm")
    elif "/" in model or model.endswith(".gguf"):
        info = add_model(model)
    else:
        info = get_model(model)
    # parallel=1: the letter judge scores one prompt at a time (choice_logprobs), and the channel judge
    # keeps its cards in a context of its own (engine.llm.channel); a batched context would only hold KV
    # cache for sequences nobody uses.
    return BackendSettings(model_path=info.path,
                           hardware=HardwareSettings(threads=threads, n_ctx=n_ctx, n_gpu_layers=gpu_layers,
                                                     parallel=1))


def _classification_name(project: Project) -> str:
    return (project.get_setting("classification", {}) or {}).get("name") or "the classification"


class _Cards(ProjectCache):
    """Each code's title and note lines, read once per project and code count (a ProjectCache, as coding._Titles)."""

    def __init__(self, project: Project):
        rows = project.conn.execute("SELECT code, parent, level, title, includes, also_includes, excludes, notes,"
                                    " is_leaf FROM codes").fetchall()
        self.codes = {r[0]: Code(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8])) for r in rows}
        self._cards: dict[str, Candidate] = {}

    def candidate(self, code: str) -> Candidate:
        card = self._cards.get(code)
        if card is None:
            item = self.codes.get(code)
            if item is None:
                card = Candidate(code, "", ())
            else:
                # code_lines: the title, then includes and also-includes lines; the title is shown apart.
                lines = [line for line in code_lines(item) if line != item.title]
                card = Candidate(code, item.title, tuple(lines))
            self._cards[code] = card
        return card


def candidates_for(project: Project, codes: Sequence[str]) -> list[Candidate]:
    """The judge's view of these codes: code, title and note lines (the prompt shows the first few)."""
    cards = _Cards.of(project)
    return [cards.candidate(code) for code in codes]


def verdict_key(judge_sha256: str, text: str, candidates: Sequence[Candidate], options: JudgeOptions,
                prior: Sequence[float] | None) -> str:
    """A digest of everything a verdict depends on: the LLM, how it asks, the text and the cards shown."""
    data = json.dumps([judge_sha256, options.to_dict(), list(prior) if prior else None, text,
                       [[c.code, c.title, list(c.lines)] for c in candidates]], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def kept_verdict(project: Project, backend, text: str, candidates: Sequence[Candidate], *, options: JudgeOptions,
                 prior: Sequence[float] | None = None) -> tuple[JudgeVerdict, bool]:
    """The judge's verdict from the project's store (table judge_verdicts) when it was asked the same
    question before, else from the LLM, stored at once in its own transaction so that a cancelled run
    keeps every answer it paid for. Returns the verdict and whether it was reused."""
    key = verdict_key(backend.model_sha256, text, candidates, options, prior)
    row = project.conn.execute("SELECT verdict FROM judge_verdicts WHERE key = ?", (key,)).fetchone()
    if row is not None:
        try:
            verdict = JudgeVerdict.from_json(json.loads(row[0]))
        except (ValueError, KeyError, TypeError):
            verdict = None      # a damaged row is asked again and overwritten
        if verdict is not None and verdict.codes == tuple(c.code for c in candidates):
            return verdict, True
    verdict = judge_candidates(backend, text, candidates, options=options, prior=prior)
    with project.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO judge_verdicts (key, judge_model_sha256, verdict) VALUES (?, ?, ?)",
                     (key, backend.model_sha256, json.dumps(verdict.to_json())))
    return verdict, False


@dataclass(frozen=True)
class SecondOpinion:
    """The judge's answer for one text, for the Code page: the coder's ranking, the judge's, and both merged.

    `preferred` is the judge's own best candidate; `shown` the candidates with the note lines it was shown.
    `changed` says whether the merged ranking's first code differs from the coder's.
    """

    text: str
    coder: list[tuple[str, float]]
    judge: list[tuple[str, float]]
    combined: list[tuple[str, float]]
    preferred: str
    shown: list[Candidate]
    seconds: float
    fitted: bool

    @property
    def changed(self) -> bool:
        return bool(self.coder and self.combined and self.coder[0][0] != self.combined[0][0])


class Judge:
    """A backend with `choice_logprobs`, the project's coder and the judge's configuration."""

    def __init__(self, project: Project, backend, *, model: int | None = None, config: JudgeConfig | None = None):
        self.project = project
        self.backend = backend
        self.coder, self.record = load_coder(project, model)
        stored = config or stored_config(project)
        if stored is not None and config is None and not self._matches(stored, self.record):
            stored = JudgeConfig(k=stored.k, orders=stored.orders, max_lines=stored.max_lines,
                                 threshold=stored.threshold, method=stored.method)  # another coder or LLM
        self.config = stored or JudgeConfig(max_lines=DEFAULT_LINES[DEFAULT_METHOD])
        if self.config.method == "channel" and not hasattr(backend, "continuation_logprobs"):
            # A server backend cannot score a text after each card: the letter judge, unfitted.
            self.config = JudgeConfig(k=self.config.k, orders=self.config.orders, threshold=self.config.threshold,
                                      method="letters", max_lines=DEFAULT_LINES["letters"])
        self.config.coder_model_id, self.config.coder_sha256 = self.record.id, self.record.sha256
        self.config.judge_model_name = backend.model_name
        self.config.judge_model_sha256 = backend.model_sha256
        self.options = self.config.options(_classification_name(project))
        self.reused = 0

    def _matches(self, config: JudgeConfig, record: ModelRecord) -> bool:
        return config.coder_sha256 == record.sha256 and config.judge_model_sha256 == self.backend.model_sha256

    @property
    def k(self) -> int:
        return self.config.k

    def signature(self) -> str:
        """What a verdict depends on: the coder, the LLM and how the judge asks (not the combination,
        which is applied to stored verdicts afresh)."""
        data = json.dumps([self.record.sha256, self.backend.model_sha256, self.config.k, self.config.orders,
                           self.config.max_lines, self.options.classification]
                          + ([self.config.method] if self.config.method != "letters" else []))
        return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]

    def verdict(self, text: str, coder_top: Sequence[tuple[str, float]], *, keep: bool = False) -> JudgeVerdict:
        """The judge's verdict on the coder's k best codes. With `keep`, from the project's store of verdicts
        when the same question was asked before, else asked and stored at once (see `kept_verdict`); `reused`
        counts the verdicts answered from the store."""
        codes = [c for c, _ in coder_top[: self.config.k]]
        candidates = candidates_for(self.project, codes)
        if not keep:
            return judge_candidates(self.backend, text, candidates, options=self.options, prior=self.config.prior)
        verdict, reused = kept_verdict(self.project, self.backend, text, candidates, options=self.options,
                                       prior=self.config.prior)
        self.reused += int(reused)
        return verdict

    def merge(self, coder_top: Sequence[tuple[str, float]], verdict: JudgeVerdict | None) -> list[tuple[str, float]]:
        if verdict is not None and self.config.prior is not None:
            verdict = recalibrate(verdict, self.config.prior)
        return combine(coder_top, verdict, self.config.combination)

    def unsure(self, coder_top: Sequence[tuple[str, float]]) -> bool:
        return bool(coder_top) and len(coder_top) > 1 and coder_top[0][1] < self.config.threshold

    @property
    def inert(self) -> bool:
        """Whether the fit gave the judge no weight: then no verdict can move a ranking, and asking the LLM
        would only cost time. `merge(coder_top, unasked(coder_top))` gives what asking would have given."""
        return self.config.fitted and self.config.combination.weight <= 0

    def unasked(self, coder_top: Sequence[tuple[str, float]]) -> JudgeVerdict:
        return JudgeVerdict.uniform([c for c, _ in coder_top[: self.config.k]])

    def second_opinion(self, text: str) -> SecondOpinion:
        """The judge on demand (whatever the coder's confidence), for the Code page."""
        coder_top = self.coder.predict(text, max(self.config.k, 5))
        if len(coder_top) < 2:
            raise StatcoderError("the coder offers fewer than two codes for this text: nothing to judge")
        started = time.perf_counter()
        verdict = self.verdict(text, coder_top)
        combined = self.merge(coder_top, verdict)
        judge = sorted(verdict.as_dict().items(), key=lambda kv: -kv[1])
        return SecondOpinion(text=text, coder=list(coder_top), judge=judge, combined=combined,
                             preferred=verdict.best[0],
                             shown=[Candidate(c.code, c.title, c.lines[: self.config.max_lines])
                                    for c in candidates_for(self.project, verdict.codes)],
                             seconds=time.perf_counter() - started, fitted=self.config.fitted)


def second_opinion(project: Project, text: str, *, backend, model: int | None = None) -> SecondOpinion:
    """The judge's ranking beside the coder's for one text (the Code page calls this on a key press,
    in a worker thread: it takes seconds on a CPU)."""
    return Judge(project, backend, model=model).second_opinion(text)


# validation and fitting --------------------------------------------------------------------------------
def validation_pairs(project: Project, *, codes: Sequence[str] | None = None) -> tuple[list[tuple[str, str]], str]:
    """Texts the coder did not train on, to fit the judge: the validation carve of real-train when there
    is real text, else held-out accepted synthetic samples, else held-out note lines. Never test texts."""
    from engine.classification.note_lines import notes_pairs
    from engine.coders.data import VALIDATION_SHARE, in_validation

    wanted = set(codes) if codes is not None else None
    real = [(t, c) for t, k, c in project.conn.execute(
        "SELECT text, text_key, code FROM real_texts WHERE split = 'train' ORDER BY id")
        if in_validation(k, VALIDATION_SHARE) and (wanted is None or c in wanted)]
    if real:
        return real, "real validation carve"
    samples = [(t, c) for t, c in project.conn.execute(
        "SELECT text, COALESCE(curated_code, code) FROM samples WHERE status = 'accepted' ORDER BY id")
        if in_validation(normalise_key(t), VALIDATION_SHARE) and (wanted is None or c in wanted)]
    if samples:
        return samples, "held-out synthetic samples"
    notes = [(t, c) for t, c in notes_pairs(project, codes) if in_validation(normalise_key(t), VALIDATION_SHARE)]
    return notes, "held-out note lines"


def choose_label_threshold(preds: Sequence[Sequence[tuple[str, float]]], gold: Sequence[str], *,
                           precision: float = 0.9, min_count: int = 5) -> float | None:
    """The lowest top probability at which the predictions at or above it are right at least `precision`
    of the time (None when no threshold reaches it)."""
    scored = sorted(((p[0][1], p[0][0] == g) for p, g in zip(preds, gold) if p), key=lambda x: -x[0])
    right = 0
    best = None
    for i, (score, ok) in enumerate(scored, start=1):
        right += ok
        if i >= min_count and right / i >= precision:
            best = score
    return best


def judge_method(backend, method: str | None = None) -> str:
    """The judge method to use with this backend: the one asked for, else the channel judge where the backend
    can score a text after each card (the in-process one) and the letter judge where it cannot (a server)."""
    method = method or (DEFAULT_METHOD if hasattr(backend, "continuation_logprobs") else "letters")
    if method not in DEFAULT_LINES:
        raise StatcoderError(f"unknown judge method {method!r}: use 'channel' or 'letters'")
    if method == "channel" and not hasattr(backend, "continuation_logprobs"):
        raise StatcoderError("the channel judge needs the in-process backend; use the method 'letters' with a server")
    return method


def fit_judge(project: Project, backend, *, model: int | None = None, k: int = DEFAULT_K, orders: int = 2,
              max_lines: int | None = None, method: str | None = None, threshold: float = DEFAULT_THRESHOLD, limit: int = 200, seed: int = 0,
              label_precision: float = 0.9, pairs: Sequence[tuple[str, str]] | None = None, save: bool = True,
              progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> JudgeConfig:
    """Calibrate the judge for the project's coder on validation texts and store it.

    Only texts the coder is unsure about (top probability below `threshold`) are judged, as in use; at
    most `limit` of them, a seeded sample, because each takes seconds on a CPU. Fitted: the position
    prior, then the combination's weight, gate and temperature; then the pseudo-label threshold at which
    validation precision reaches `label_precision`.
    """
    method = judge_method(backend, method)
    config = JudgeConfig(k=k, orders=orders, max_lines=max_lines or DEFAULT_LINES[method], threshold=threshold,
                         method=method)
    judge = Judge(project, backend, model=model, config=config)
    source = "given pairs"
    if pairs is None:
        pairs, source = validation_pairs(project, codes=judge.coder.codes)
    pairs = [(t, c) for t, c in pairs if c in set(judge.coder.codes)]
    if len(pairs) < 5:
        raise StatcoderError(f"too few validation texts to fit the judge ({len(pairs)}); import real texts or "
                             "generate samples first")
    texts = [t for t, _ in pairs]
    # The coder as it was before it joined its carve to its references (see engine.coders.base.held_out_view):
    # on lines it has seen it would look sure and right, and the judge would be fitted to move nothing.
    preds = held_out_view(judge.coder).predict_many(texts, max(k, 5))
    unsure = [i for i, p in enumerate(preds) if judge.unsure(p)]
    chosen = list(unsure)
    random.Random(f"judge-fit:{seed}").shuffle(chosen)
    chosen = sorted(chosen[:limit])
    meter = ProgressMeter(len(chosen), progress)
    raw: dict[int, JudgeVerdict] = {}
    asked = 0
    started = time.perf_counter()
    for n, i in enumerate(chosen):
        if cancel is not None:
            cancel.check()
        # kept: a cancelled or repeated fit asks the LLM only what it has not answered before
        raw[i], reused = kept_verdict(project, backend, texts[i], candidates_for(project, [c for c, _ in preds[i][:k]]),
                                      options=judge.options, prior=None)
        asked += not reused
        meter.update(n + 1, f"judging validation texts: {n + 1} of {len(chosen)}")
    seconds = time.perf_counter() - started
    # The channel judge shows no positions: nothing to divide out.
    prior = list(fit_position_prior(raw.values(), k)) if raw and method == "letters" else None
    verdicts = {i: recalibrate(v, prior) for i, v in raw.items()}
    gold = [c for _, c in pairs]
    if verdicts:
        fit = fit_combination([preds[i] for i in chosen], [verdicts[i] for i in chosen], [gold[i] for i in chosen])
    else:
        fit = CombinationFit(Combination(), 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    config.prior, config.combination = prior, fit.combination
    final = [combine(p, verdicts.get(i), fit.combination) if i in verdicts else p for i, p in enumerate(preds)]
    # The sure texts all count, the unsure ones as far as they were judged.
    kept = [i for i in range(len(preds)) if i in verdicts or not judge.unsure(preds[i])]
    config.label_threshold = choose_label_threshold([final[i] for i in kept], [gold[i] for i in kept],
                                                    precision=label_precision)
    config.coder_model_id, config.coder_sha256 = judge.record.id, judge.record.sha256
    config.judge_model_name, config.judge_model_sha256 = backend.model_name, backend.model_sha256
    config.fitted = bool(verdicts)
    config.fit = {**fit.to_dict(), "validation": source, "validation_texts": len(pairs), "unsure": len(unsure),
                  "judged": len(chosen), "asked": asked, "seconds_per_text": round(seconds / max(1, asked), 3),
                  "share_judged": round(len(unsure) / len(pairs), 4), "label_precision": label_precision}
    if save:
        project.set_setting(JUDGE_SETTING, config.to_json())
    return config


# batch coding ------------------------------------------------------------------------------------------
class BatchJudge:
    """The judge inside batch coding, with a journal `<out>.judge.jsonl` of every verdict.

    A row's verdict is reused when the row number, the text and the judge's signature match, so running
    a cancelled batch again judges only the rows it had not reached. The journal is removed when the
    batch finishes (`finish`).
    """

    def __init__(self, judge: Judge, out_path: str | Path):
        self.judge = judge
        self.path = Path(out_path).with_name(Path(out_path).name + ".judge.jsonl")
        self.signature = judge.signature()
        self.done: dict[tuple[int, str], JudgeVerdict] = {}
        self.judged = self.reused = self.changed = self.skipped = 0
        self.seconds = 0.0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if entry.get("sig") == self.signature:
                    self.done[(int(entry["row"]), entry["key"])] = JudgeVerdict.from_json(entry["verdict"])
        self._handle = None

    @property
    def k(self) -> int:
        return self.judge.k

    @property
    def inert(self) -> bool:
        return self.judge.inert

    def unsure(self, coder_top: Sequence[tuple[str, float]], threshold: float) -> bool:
        return bool(coder_top) and len(coder_top) > 1 and coder_top[0][1] < threshold

    def rerank(self, row: int, text: str, coder_top: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
        key = hashlib.sha256(normalise_key(text).encode("utf-8")).hexdigest()[:16]
        verdict = self.done.get((row, key))
        if verdict is None and self.judge.inert:
            verdict = self.judge.unasked(coder_top)      # the fit gave the judge no weight: nothing to ask
            self.skipped += 1
        elif verdict is None:
            started = time.perf_counter()
            verdict = self.judge.verdict(text, coder_top)
            self.seconds += time.perf_counter() - started
            self.judged += 1
            if self._handle is None:
                self._handle = open(self.path, "a", encoding="utf-8")
            self._handle.write(json.dumps({"row": row, "key": key, "sig": self.signature,
                                           "verdict": verdict.to_json()}) + "\n")
            self._handle.flush()
        else:
            self.reused += 1
        merged = self.judge.merge(coder_top, verdict)
        self.changed += bool(merged and merged[0][0] != coder_top[0][0])
        return merged

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def summary(self) -> dict:
        return {"judged": self.judged, "reused": self.reused, "changed": self.changed, "not_asked": self.skipped,
                "seconds_per_judged": round(self.seconds / self.judged, 3) if self.judged else None,
                "judge_model_sha256": self.judge.backend.model_sha256, "fitted": self.judge.config.fitted}
