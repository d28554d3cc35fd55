"""What a user chooses for a curation run, as plain values: one place that turns them into CurationOptions.

`statcoder curate run` and the Review page's curation form both fill a `CurationSettings` and call
`curation_options`, so the GUI runs curation with exactly the options (and defaults) of the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.curate.labelcheck import LabelCheckOptions
from engine.curate.methods import MethodOptions
from engine.curate.store import ALL_RULES, DEFAULT_RELABEL, DEFAULT_REJECT, CurationOptions, default_label_check
from engine.errors import StatcoderError
from engine.store.project import Project

CHECKERS = ("auto", "fasttext", "embedding")
CHECK_MODES = ("kfold", "notes")


@dataclass
class CurationSettings:
    """The options of `statcoder curate run`, with its defaults. None for rules means the default set."""

    run_ids: list[int] | None = None        # None: every generation run
    threshold: float = 90.0                 # near-duplicate threshold (rapidfuzz ratio 0-100)
    rules: frozenset[str] | None = None     # None: every rule
    reject: frozenset[str] | None = None    # None: every rule but note_copy
    relabel: frozenset[str] | None = None   # None: excludes_conflict and label_check
    label_check: bool = True
    folds: int = 5
    top_k: int = 3
    confident: float = 0.8
    use_real_train: bool = True
    checker: str = "auto"                   # auto | fasttext | embedding
    check_mode: str | None = None           # None: notes for embeddings, kfold for fastText
    quota: int | None = None
    cap: int | None = None
    supergen_share: float = 0.0             # SuperGen / SunGen / FuseGen (engine.curate.methods); 0 = off
    sungen_share: float = 0.0
    fusegen_top_k: int = 0
    # The local LLM judge as the label check's second reader (engine.curate.judgecheck): a flag relabels or
    # rejects only where the judge prefers another code with at least `judge_confidence`.
    judge: bool = False
    judge_confidence: float = 0.5
    judge_method: str | None = None         # None: channel with a local model, letters with a server
    judge_model: str | None = None          # registered name/sha256 or a GGUF path; None: the default model
    judge_threads: int = 2

    def methods(self) -> MethodOptions:
        return MethodOptions(supergen_share=self.supergen_share, sungen_share=self.sungen_share,
                             fusegen_top_k=self.fusegen_top_k)

    def validate(self) -> None:
        unknown = set(self.rules or ()) | set(self.reject or ()) | set(self.relabel or ())
        unknown -= set(ALL_RULES)
        if unknown:
            raise StatcoderError(f"unknown curation rule(s): {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(ALL_RULES)}")
        if self.checker not in CHECKERS:
            raise StatcoderError(f"the label checker must be one of {', '.join(CHECKERS)}, not '{self.checker}'")
        if self.check_mode is not None and self.check_mode not in CHECK_MODES:
            raise StatcoderError(f"the check mode must be one of {', '.join(CHECK_MODES)}, not '{self.check_mode}'")
        if not 0 <= self.threshold <= 100:
            raise StatcoderError(f"the near-duplicate threshold is a ratio from 0 to 100, not {self.threshold}")
        if self.folds < 2:
            raise StatcoderError(f"the label check needs at least 2 folds, not {self.folds}")
        if self.top_k < 1:
            raise StatcoderError(f"top k must be at least 1, not {self.top_k}")
        if self.judge and not self.label_check:
            raise StatcoderError("the LLM judge reads the label check's flags: turn the label check on, or the judge off")
        if not 0.0 <= self.judge_confidence <= 1.0:
            raise StatcoderError(f"the judge's confidence is a probability from 0 to 1, not {self.judge_confidence}")
        if self.judge_method is not None and self.judge_method not in ("channel", "letters"):
            raise StatcoderError(f"the judge method must be 'channel' or 'letters', not '{self.judge_method}'")
        self.methods().check()


def parse_rules(value: str | None) -> frozenset[str] | None:
    """'a, b' -> {'a', 'b'}; None stays None (the default set); 'none' is the empty set."""
    if value is None:
        return None
    if value.strip().casefold() == "none":
        return frozenset()
    return frozenset(r.strip() for r in value.split(",") if r.strip())


def _label_check(project: Project, settings: CurationSettings) -> LabelCheckOptions:
    if settings.checker == "auto":
        check = default_label_check(project)
    elif settings.checker == "embedding":
        from engine.coders.embedding.checker import embedding_checker

        check = LabelCheckOptions(mode="notes", checker=embedding_checker())
    else:
        check = LabelCheckOptions(mode="kfold")
    return dataclasses.replace(check, folds=settings.folds, top_k=settings.top_k, confident=settings.confident,
                               mode=settings.check_mode or check.mode)


def curation_options(project: Project, settings: CurationSettings) -> CurationOptions:
    """The CurationOptions these settings stand for (the label checker is chosen for the project)."""
    settings.validate()
    return CurationOptions(
        near_threshold=settings.threshold,
        rules=frozenset(ALL_RULES) if settings.rules is None else settings.rules,
        reject=DEFAULT_REJECT if settings.reject is None else settings.reject,
        relabel=DEFAULT_RELABEL if settings.relabel is None else settings.relabel,
        label_check=_label_check(project, settings) if settings.label_check else None,
        use_real_train=settings.use_real_train, quota=settings.quota, cap=settings.cap, methods=settings.methods())


def run_curation(project: Project, settings: CurationSettings, *, progress=None, cancel=None):
    """Curate with these settings: what `statcoder curate run` and the Review page both call. With
    `settings.judge` the local LLM reads every label-check flag (seconds per flag on a CPU); its verdicts
    are kept in the project as they come, so a cancelled run resumes when started again."""
    from engine.curate.store import curate

    options = curation_options(project, settings)
    if not settings.judge:
        return curate(project, run_ids=settings.run_ids, options=options, progress=progress, cancel=cancel)
    from engine.assist.judge import judge_backend_settings
    from engine.curate.judgecheck import JudgeConfirm
    from engine.llm.backends import open_backend

    if progress is not None:
        from engine.jobs import ProgressInfo

        progress(ProgressInfo(0, 0, "loading the LLM judge"))
    with open_backend(judge_backend_settings(settings.judge_model, threads=settings.judge_threads)) as backend:
        confirm = JudgeConfirm(project, backend, min_confidence=settings.judge_confidence,
                               method=settings.judge_method, cancel=cancel)
        options = dataclasses.replace(options, label_check=dataclasses.replace(options.label_check, confirm=confirm))
        result = curate(project, run_ids=settings.run_ids, options=options, progress=progress, cancel=cancel)
    return dataclasses.replace(result, judge={**confirm.summary(), **confirm.describe()})
