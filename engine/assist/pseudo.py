"""Pseudo-labels: the project's uncoded texts coded by the best coder and the LLM judge.

`label_uncoded` codes every uncoded text not labelled yet (chunk by chunk, each chunk committed, so an
interrupted run continues where it stopped). Every verdict of the judge is kept in the project as soon as it
is made (engine.assist.judge.kept_verdict), so a run with `relabel`, or after a cancel inside a chunk, asks
the LLM only the questions it has not answered before. The judge re-ranks the texts the coder is unsure about.
Labels at or above the threshold chosen on validation (JudgeConfig.label_threshold, or the coder's own
when there is no judge) become status 'pseudo': a training source (`pseudo_pairs`, DataMix.pseudo).
The least confident of the rest go to the review queue ('review'); a person's decision
(`decide_pseudo`) turns the text into a real coded text like any decision in the Code page.

A text that is in the test split of the real coded texts is never labelled: a pseudo-label for it would
put the test set into training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from engine.assist.judge import Judge, choose_label_threshold, validation_pairs
from engine.changes import Changes
from engine.coders.base import held_out_view
from engine.coders.registry import load_coder
from engine.errors import StatcoderError, with_hint
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.store.project import Project

CHUNK = 128
TEST_KEYS = "SELECT text_key FROM real_texts WHERE split = 'test'"


@dataclass
class LabelResult:
    texts: int              # uncoded texts in the project
    labelled: int           # labelled by this call
    pseudo: int             # labels now in the training source (whole project)
    held: int
    review: int             # waiting for a person (whole project)
    judged: int             # texts the judge looked at in this call
    skipped_test: int       # uncoded texts that are test texts: never labelled
    threshold: float | None
    threshold_from: str
    seconds: float
    coder_model_id: int
    judge_model_sha256: str | None
    reused: int = 0         # of the judged, answered from the project's store of earlier verdicts
    not_asked: int = 0      # unsure texts not put to a judge whose fit gave it no weight (Judge.inert)

    @property
    def changes(self) -> Changes:
        return Changes.of("realdata")

    def lines(self) -> list[str]:
        thr = "none (nothing reaches the precision)" if self.threshold is None else f"{self.threshold:.3f}"
        kept = f", {self.reused} of them answered from earlier runs' verdicts" if self.reused else ""
        return ([f"labelled {self.labelled} texts in {self.seconds:.0f} s ({self.judged} judged{kept}); "
                f"{self.skipped_test} test-split texts skipped",
                f"pseudo-labels (training source): {self.pseudo}; for review: {self.review}; held back: {self.held}",
                f"threshold {thr} ({self.threshold_from})"]
                + ([f"{self.not_asked} unsure texts not put to the judge: its fit on validation gave it no weight, "
                    "so no verdict could change their labels"] if self.not_asked else []))


@dataclass(frozen=True)
class PseudoItem:
    uncoded_id: int
    text: str
    code: str
    score: float


def _threshold(project: Project, coder, judge: Judge | None, precision: float) -> tuple[float | None, str]:
    if judge is not None and judge.config.fitted:
        return judge.config.label_threshold, "judge fitted on " + judge.config.fit.get("validation", "validation")
    pairs, source = validation_pairs(project, codes=coder.codes)
    pairs = [(t, c) for t, c in pairs if c in set(coder.codes)]
    if not pairs:
        raise with_hint(StatcoderError("no validation texts to choose a pseudo-label threshold"), "threshold")
    # Held-out samples are the lines a zero-real kNN carved and then joined to its references: score them
    # with the coder as it was before, or it reads them back and the threshold comes out too low.
    preds = held_out_view(coder).predict_many([t for t, _ in pairs], 1)
    return choose_label_threshold(preds, [c for _, c in pairs], precision=precision), f"coder alone on {source}"


def label_uncoded(project: Project, *, judge: Judge | None = None, model: int | None = None,
                  threshold: float | None = None, review: int = 100, precision: float = 0.9, relabel: bool = False,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> LabelResult:
    """Label the uncoded texts; returns what was done. See the module docstring."""
    coder, record = (judge.coder, judge.record) if judge is not None else load_coder(project, model)
    started = time.perf_counter()
    if threshold is not None:
        chosen, source = threshold, "given"
    else:
        chosen, source = _threshold(project, coder, judge, precision)
    cut = chosen if chosen is not None else float("inf")
    judge_sha = judge.backend.model_sha256 if judge is not None else None
    reused_before = judge.reused if judge is not None else 0
    with project.transaction() as conn:
        # Test texts never carry a pseudo-label, even one made before their coded twin was imported.
        conn.execute(f"DELETE FROM pseudo_labels WHERE uncoded_id IN (SELECT id FROM uncoded_texts WHERE text_key IN"
                     f" ({TEST_KEYS}))")
        if relabel:
            conn.execute("DELETE FROM pseudo_labels WHERE status != 'reviewed'")
    skipped = project.conn.execute(f"SELECT COUNT(*) FROM uncoded_texts WHERE text_key IN ({TEST_KEYS})").fetchone()[0]
    todo = project.conn.execute(
        "SELECT id, text FROM uncoded_texts WHERE id NOT IN (SELECT uncoded_id FROM pseudo_labels)"
        f" AND text_key NOT IN ({TEST_KEYS}) ORDER BY id").fetchall()
    labelled = judged = not_asked = 0
    k = judge.k if judge is not None else 1

    def row(uid: int, pred, coder_top: tuple[str, float], was_judged: bool) -> tuple:
        code, score = pred[0]
        return (uid, code, float(score), "pseudo" if score >= cut else "held", coder_top[0], float(coder_top[1]),
                int(was_judged), record.id, record.sha256, judge_sha if was_judged else None, chosen)

    def store(rows: list[tuple]) -> None:
        with project.transaction() as conn:
            conn.executemany(
                "INSERT INTO pseudo_labels (uncoded_id, code, score, status, coder_code, coder_score, judged,"
                " coder_model_id, coder_sha256, judge_model_sha256, threshold)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    # First the coder over every text (fast): the texts it is sure of are labelled at once, the unsure ones
    # wait for the judge.
    meter = ProgressMeter(len(todo), progress)
    asks: list[tuple[int, str, list]] = []
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        rows: list[tuple] = []
        for (uid, text), pred in zip(chunk, coder.predict_many([t for _, t in chunk], max(k, 1))):
            if not pred:
                continue
            if judge is None or not judge.unsure(pred):
                rows.append(row(uid, pred, pred[0], False))
            elif judge.inert:
                not_asked += 1       # a judge fitted to no weight: what asking would give, at no cost
                rows.append(row(uid, judge.merge(pred, judge.unasked(pred)), pred[0], False))
            else:
                asks.append((uid, text, pred))
        store(rows)
        labelled += len(rows)
        meter.update(start + len(chunk), f"coding: {start + len(chunk)} of {len(todo)}")
        if cancel is not None:
            cancel.check()
    # Then the judge over the unsure texts of the whole backlog, grouped by the coder's two best codes, so
    # that the channel judge finds most of their candidates' cards still in its KV cache (the labels do not
    # depend on the order). Each chunk is committed, also when cancelled, and every verdict is kept.
    asks.sort(key=lambda a: (a[2][0][0], a[2][1][0], a[0]))
    meter = ProgressMeter(len(asks), progress)
    for start in range(0, len(asks), CHUNK):
        rows = []
        try:
            for uid, text, pred in asks[start:start + CHUNK]:
                if cancel is not None:
                    cancel.check()
                rows.append(row(uid, judge.merge(pred, judge.verdict(text, pred, keep=True)), pred[0], True))
                judged += 1
                meter.update(judged, f"judging the unsure texts: {judged} of {len(asks)}")
        finally:
            store(rows)
            labelled += len(rows)
    _fill_review_queue(project, review)
    counts = dict(project.conn.execute("SELECT status, COUNT(*) FROM pseudo_labels GROUP BY status").fetchall())
    total = project.conn.execute("SELECT COUNT(*) FROM uncoded_texts").fetchone()[0]
    return LabelResult(texts=total, labelled=labelled, pseudo=counts.get("pseudo", 0), held=counts.get("held", 0),
                       review=counts.get("review", 0), judged=judged, skipped_test=skipped, threshold=chosen,
                       threshold_from=source, seconds=time.perf_counter() - started, coder_model_id=record.id,
                       judge_model_sha256=judge_sha,
                       reused=(judge.reused - reused_before) if judge is not None else 0, not_asked=not_asked)


def _fill_review_queue(project: Project, size: int) -> None:
    """Top the review queue up to `size` with the least confident held-back labels."""
    with project.transaction() as conn:
        waiting = conn.execute("SELECT COUNT(*) FROM pseudo_labels WHERE status = 'review'").fetchone()[0]
        more = max(0, size - waiting)
        if more:
            conn.execute("UPDATE pseudo_labels SET status = 'review' WHERE uncoded_id IN (SELECT uncoded_id FROM"
                         " pseudo_labels WHERE status = 'held' ORDER BY score, uncoded_id LIMIT ?)", (more,))


def pseudo_review_queue(project: Project) -> list[PseudoItem]:
    """The labels waiting for a person, least confident first."""
    return [PseudoItem(*row) for row in project.conn.execute(
        "SELECT p.uncoded_id, u.text, p.code, p.score FROM pseudo_labels p JOIN uncoded_texts u ON u.id = p.uncoded_id"
        " WHERE p.status = 'review' ORDER BY p.score, p.uncoded_id")]


def decide_pseudo(project: Project, uncoded_id: int, code: str) -> None:
    """A person's code for a labelled text: recorded as a decision (it becomes a real coded text unless
    it is a test text) and the label is marked 'reviewed', so it leaves the pseudo-labelled source."""
    from engine.assist.coding import record_decision

    row = project.conn.execute("SELECT u.text, p.code, p.coder_model_id, p.score FROM pseudo_labels p JOIN"
                               " uncoded_texts u ON u.id = p.uncoded_id WHERE p.uncoded_id = ?",
                               (uncoded_id,)).fetchone()
    if row is None:
        raise StatcoderError(f"uncoded text {uncoded_id} has no label to review")
    record_decision(project, row[0], row[1], code, model_id=row[2], confidence=row[3])
    mark_reviewed(project, uncoded_id, code)


def mark_reviewed(project: Project, uncoded_id: int, code: str | None) -> None:
    """The label was decided by a person whose decision is already stored (the Code page's panel records
    it): 'reviewed', with the person's code, or with the label's own code when the text cannot be coded.
    Either way it leaves the pseudo-labelled source and the review queue."""
    with project.transaction() as conn:
        cur = conn.execute("UPDATE pseudo_labels SET status = 'reviewed', code = COALESCE(?, code)"
                           " WHERE uncoded_id = ?", (code, uncoded_id))
        if cur.rowcount != 1:
            raise StatcoderError(f"uncoded text {uncoded_id} has no label to review")


def reopen_review(project: Project, uncoded_id: int) -> None:
    """A person's decision on a reviewed label was undone: the text waits in the review queue again."""
    with project.transaction() as conn:
        conn.execute("UPDATE pseudo_labels SET status = 'review' WHERE uncoded_id = ? AND status = 'reviewed'",
                     (uncoded_id,))


@dataclass(frozen=True)
class PseudoStatus:
    """Where a project's uncoded texts stand, for the Code page and `statcoder info`."""

    uncoded: int        # imported uncoded texts
    test: int           # of them in the test split of the coded texts: never labelled
    unlabelled: int     # waiting for `label_uncoded`
    pseudo: int         # confident labels: the pseudo-labelled training source
    held: int           # labelled, below the threshold, not in the review queue
    review: int         # waiting for a person
    reviewed: int       # decided by a person (now real coded texts)


def pseudo_status(project: Project) -> PseudoStatus:
    conn = project.conn
    uncoded = conn.execute("SELECT COUNT(*) FROM uncoded_texts").fetchone()[0]
    if not uncoded:
        # The usual case, asked on the GUI thread after every training: no need to scan the test keys.
        return PseudoStatus(uncoded=0, test=0, unlabelled=0, pseudo=0, held=0, review=0, reviewed=0)
    test = conn.execute(f"SELECT COUNT(*) FROM uncoded_texts WHERE text_key IN ({TEST_KEYS})").fetchone()[0]
    unlabelled = conn.execute("SELECT COUNT(*) FROM uncoded_texts WHERE id NOT IN (SELECT uncoded_id FROM"
                              f" pseudo_labels) AND text_key NOT IN ({TEST_KEYS})").fetchone()[0]
    counts = dict(conn.execute("SELECT status, COUNT(*) FROM pseudo_labels GROUP BY status").fetchall())
    return PseudoStatus(uncoded=uncoded, test=test, unlabelled=unlabelled, pseudo=counts.get("pseudo", 0),
                        held=counts.get("held", 0), review=counts.get("review", 0),
                        reviewed=counts.get("reviewed", 0))


def pseudo_pairs(project: Project, codes: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(text, code) of the 'pseudo' labels: the pseudo-labelled training source. Texts in the test split
    are left out here too, whatever the table holds."""
    rows = project.conn.execute(
        "SELECT u.text, p.code FROM pseudo_labels p JOIN uncoded_texts u ON u.id = p.uncoded_id"
        f" WHERE p.status = 'pseudo' AND u.text_key NOT IN ({TEST_KEYS}) ORDER BY u.id").fetchall()
    if codes is not None:
        wanted = set(codes)
        rows = [r for r in rows if r[1] in wanted]
    return [(t, c) for t, c in rows]


def pseudo_provenance(project: Project) -> list[dict]:
    """Where the pseudo-labels came from: per coder and judge, how many and their score range."""
    return [{"coder_model_id": r[0], "coder_sha256": r[1], "judge_model_sha256": r[2], "status": r[3], "count": r[4],
             "min_score": r[5], "max_score": r[6]} for r in project.conn.execute(
        "SELECT coder_model_id, coder_sha256, judge_model_sha256, status, COUNT(*), MIN(score), MAX(score)"
        " FROM pseudo_labels GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4")]
