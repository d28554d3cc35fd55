"""The LLM judge as the label check's second reader: a flagged sample is relabelled or rejected only when
the judge is confident it belongs to another code.

The statistical checker (embeddings or fastText, engine.curate.labelcheck) reads every sample and flags
the doubtful ones; on all of NACE it is right only about half the time, so acting on each flag moves as
many good labels as bad ones. `JudgeConfirm` is the label check's `confirm` hook: for each flag it shows
the local LLM the sample and the checker's candidates (plus the sample's own code), and keeps the flag
only where the judge prefers another code with probability at least `min_confidence`; the flag's
suggested code becomes the judge's choice. Only flagged samples are judged, so the cost is seconds per
flag, not per sample.

Every verdict is kept in the project as soon as it is made (engine.assist.judge.kept_verdict): a judged
curation of a whole classification takes hours on a CPU, and one that is cancelled or crashes resumes
where it stopped when it is run again. The label check hands the flags over grouped by code
(engine.curate.labelcheck), so the channel judge finds most candidates' cards in its cache.
"""

from __future__ import annotations

import time
from typing import Sequence

from engine.assist.judge import DEFAULT_LINES, candidates_for, judge_method, kept_verdict, stored_config
from engine.curate.rules import Hit, Sample
from engine.jobs import CancelToken
from engine.llm.judge import JudgeOptions
from engine.store.project import Project


class JudgeConfirm:
    """Callable (sample, checker prediction, hit) -> hit or None; counts what it did (`judged` flags, of
    which `reused` were answered from the project's store of earlier verdicts)."""

    __name__ = "judge"

    def __init__(self, project: Project, backend, *, k: int = 5, orders: int = 2, max_lines: int | None = None,
                 min_confidence: float = 0.5, method: str | None = None, cancel: CancelToken | None = None):
        self.project, self.backend = project, backend
        self.k, self.min_confidence, self.cancel = k, min_confidence, cancel
        # The product's judge method, as the coding panel and `statcoder label` use it.
        method = judge_method(backend, method)
        classification = (project.get_setting("classification", {}) or {}).get("name") or "the classification"
        self.options = JudgeOptions(orders=orders if method == "letters" else 1, method=method,
                                    max_lines=max_lines or DEFAULT_LINES[method], classification=classification)
        config = stored_config(project)
        # The position prior fitted by `statcoder judge fit` applies to the letter judge when it was fitted
        # for this LLM and k; the channel judge shows no positions.
        self.prior = (config.prior if method == "letters" and config is not None and config.prior
                      and len(config.prior) == k and config.judge_model_sha256 == backend.model_sha256 else None)
        self.judged = self.confirmed = self.dismissed = self.reused = 0
        self.seconds = 0.0

    def describe(self) -> dict:
        return {"judge_model_sha256": self.backend.model_sha256, "k": self.k, "method": self.options.method,
                "orders": self.options.orders, "max_lines": self.options.max_lines,
                "min_confidence": self.min_confidence, "prior": self.prior}

    def __call__(self, sample: Sample, prediction: Sequence[tuple[str, float]], hit: Hit) -> Hit | None:
        if self.cancel is not None:
            self.cancel.check()
        codes = [c for c, _ in prediction[: self.k]]
        if sample.code not in codes:
            codes = codes[: self.k - 1] + [sample.code]
        if len(codes) < 2:
            return hit
        started = time.perf_counter()
        verdict, reused = kept_verdict(self.project, self.backend, sample.text, candidates_for(self.project, codes),
                                       options=self.options, prior=self.prior)
        if reused:
            self.reused += 1
        else:
            self.seconds += time.perf_counter() - started
        self.judged += 1
        best, p = verdict.best
        own = verdict.as_dict().get(sample.code, 0.0)
        if best == sample.code or p < self.min_confidence:
            self.dismissed += 1
            return None
        self.confirmed += 1
        return Hit(hit.sample_id, hit.rule, f"{hit.reason}; the LLM judge prefers {best} ({p:.2f}, own code {own:.2f})",
                   best)

    def summary(self) -> dict:
        asked = self.judged - self.reused
        return {"judged": self.judged, "confirmed": self.confirmed, "dismissed": self.dismissed,
                "reused": self.reused, "seconds_per_judged": round(self.seconds / asked, 3) if asked else None}
