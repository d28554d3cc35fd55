"""Coding assistance: suggest codes for a text, batch-code a CSV file, and record, revise or undo the coder's decisions."""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from engine.atomic import atomic_write, check_output_path, safe_cell
from engine.classification.reading import CsvStream, shown_columns
from engine.coders.registry import default_model_id, get_model, load_coder
from engine.errors import StatcoderError, UnknownCodeError, ValidationError, Problem
from engine.jobs import CancelToken, ProgressCallback, ProgressMeter
from engine.store.cache import ProjectCache
from engine.store.project import Project
from engine.coders.heads import head_of
from engine.text import clean_text, normalise_key, words as word_tokens

if TYPE_CHECKING:
    from engine.assist.judge import BatchJudge

OUTPUT_COLUMNS = ("code", "confidence", "model_version", "status")
BATCH_CHUNK = 256
UNCODABLE = "uncodable"   # the kind of a decision that says the text cannot be coded
# A text with fewer letters than this, or without one word the classification's notes or the real
# texts use, is never coded automatically: a coder is confident about "1" or "asdf" only by accident.
MIN_LETTERS = 3
_WORD = re.compile(r"[^\W\d_]+")
_STEM = 5   # words sharing their first 5 letters count as the same word ("bakeries", "bakery")


@dataclass(frozen=True)
class Suggestion:
    code: str
    probability: float
    title: str
    path: tuple[tuple[str, str], ...]   # (code, title) from the top of the hierarchy down to the code's parent


@dataclass
class BatchResult:
    rows: int
    auto: int
    review: int
    empty: int
    seconds: float
    model_id: int
    model_version: str
    out_path: Path
    judge: dict | None = None      # BatchJudge.summary() when the batch was judged
    meaningless: int = 0   # too short, or no known word: sent to review uncoded (see codable_problem)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Decision:
    correction_id: int
    real_id: int | None
    kind: str


@dataclass(frozen=True)
class StoredDecision:
    """A decision as stored: `chosen_code` is None when the text was marked as one that cannot be coded."""

    id: int
    text: str
    suggested_code: str | None
    chosen_code: str | None
    kind: str
    real_id: int | None
    created: str


class _Titles(ProjectCache):
    """Titles and parents of every code, read once per project file and kept for fast suggestions."""

    def __init__(self, project: Project):
        rows = project.conn.execute("SELECT code, parent, title FROM codes").fetchall()
        self.title = {c: t for c, _, t in rows}
        self.parent = {c: p for c, p, _ in rows}
        self._paths: dict[str, tuple[tuple[str, str], ...]] = {}

    def path(self, code: str) -> tuple[tuple[str, str], ...]:
        cached = self._paths.get(code)
        if cached is None:
            chain = []
            node = self.parent.get(code)
            while node is not None:
                chain.append((node, self.title.get(node, "")))
                node = self.parent.get(node)
            cached = self._paths[code] = tuple(reversed(chain))
        return cached

    def head_words(self) -> dict[str, str]:
        """Each title head (engine.coders.heads: the first four letters of a title's first word) as the word
        most titles spell it with, capitalised: 'whol' -> 'Wholesale'."""
        if not hasattr(self, "_head_words"):
            spelled: dict[str, Counter] = {}
            for title in self.title.values():
                found = word_tokens(title)
                if found:
                    spelled.setdefault(head_of(title), Counter())[found[0]] += 1
            self._head_words = {h: c.most_common(1)[0][0].capitalize() for h, c in spelled.items()}
        return self._head_words


class _Vocabulary(ProjectCache):
    """The words of the classification (titles, notes) and of the real texts, by their first letters."""

    def __init__(self, project: Project):
        self.stems: set[str] = set()
        for row in project.conn.execute("SELECT title, includes, also_includes, excludes, notes FROM codes"):
            for field in row:
                self._add(field or "")
        for (text,) in project.conn.execute("SELECT text FROM real_texts WHERE split = 'train'"):
            self._add(text)

    def _add(self, text: str) -> None:
        self.stems.update(w[:_STEM] for w in _WORD.findall(text.casefold()) if len(w) >= MIN_LETTERS)

    def knows(self, word: str) -> bool:
        return word[:_STEM] in self.stems



def codable_problem(project: Project, text: str) -> str | None:
    """Why a text is too short or meaningless to code, or None when it can be coded.

    Such texts get no suggestion and are never auto-coded: a person reads them (or marks them as
    texts that cannot be coded).
    """
    return _text_problem(text, _Vocabulary.of(project))


def _text_problem(text: str, vocabulary: _Vocabulary) -> str | None:
    words = _WORD.findall(clean_text(text).casefold())
    if sum(len(w) for w in words) < MIN_LETTERS:
        return f"too short to code (fewer than {MIN_LETTERS} letters)"
    if not any(len(w) >= MIN_LETTERS and vocabulary.knows(w) for w in words):
        return "no word of it appears in the classification's notes or the real texts"
    return None


def suggest(project: Project, text: str, k: int = 5, model: int | None = None) -> list[Suggestion]:
    """The k most likely codes for a text, with probability, title and hierarchy path (default model if None).

    A text too short or meaningless to code (see codable_problem) gets no suggestions.
    """
    coder, _ = load_coder(project, model)
    if codable_problem(project, text) is not None:
        return []
    titles = _Titles.of(project)
    return [Suggestion(code, prob, titles.title.get(code, ""), titles.path(code))
            for code, prob in coder.predict(text, k)]


def activities_named(project: Project, text: str, model: int | None = None) -> list[str]:
    """The activities a text names that the coder moves it toward (its title heads, engine.coders.heads), each
    as the title word it matches ('Wholesale', 'Agents'); none for a coder without title heads."""
    coder, _ = load_coder(project, model)
    heads = getattr(coder, "heads", None)
    if heads is None:
        return []
    spelled = _Titles.of(project).head_words()
    return [spelled.get(h, h) for h in heads.text_heads(text)]


def describe_default_coder(project: Project) -> str:
    """One line naming the model that serves suggestions, for the coding panel's header."""
    model_id = default_model_id(project)
    if model_id is None:
        return "no trained model yet: train one first"
    record = get_model(project, model_id)
    val = f", validation top-1 {record.validation['top1']:.0%}" if record.validation else ""
    return f"model {record.id} ({record.kind}, {record.name}{val})"


def _count_rows(path: Path) -> int:
    """Data rows, by counting newlines (quoted multi-line fields make it an estimate; it only drives progress)."""
    lines = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return max(0, lines - 1)


def _chunks(rows: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def review_state_path(coded_path: str | Path) -> Path:
    """Where the review queue keeps its decisions for a coded file."""
    coded_path = Path(coded_path)
    return coded_path.with_name(coded_path.name + ".review.json")


def batch_code_csv(project: Project, in_path: str | Path, out_path: str | Path, *, text_column: str,
                   threshold: float = 0.5, model: int | None = None, encoding: str = "utf-8",
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                   judge: "BatchJudge | None" = None) -> BatchResult:
    """Code every row of a CSV, streaming: rows at or above the threshold are 'auto', the rest 'review'.

    The input is read like the importers read (BOM, delimiter sniffing, decode errors naming the row).
    The output keeps the input's columns and adds code, confidence, model_version and status; cells a
    spreadsheet would run as formulas get a leading '. Only one chunk of rows is in memory at a time,
    so the file's size does not matter. The output is written to a temporary file and renamed over
    OUT at the end, so a cancel, an error or a full disk leaves the old OUT (if any) as it was; a
    review state left beside an old OUT is removed, since its decisions belong to other rows.

    With a `judge` (engine.assist.judge.BatchJudge), rows below the threshold are re-ranked by the LLM judge
    before their status is decided, and a `judge` column says 'changed', 'agreed' or '' (not judged, also when
    the judge's fit gave it no weight, so it is not asked).
    Its verdicts are journalled, so running a cancelled judged batch again does not judge a row twice.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not 0.0 <= threshold <= 1.0:
        raise StatcoderError(f"the threshold must be between 0 and 1, not {threshold}")
    check_output_path(out_path, project=project, inputs=(in_path,))
    coder, record = load_coder(project, model)
    version = f"{record.id}:{record.sha256[:12]}"
    vocabulary = _Vocabulary.of(project)
    meter = ProgressMeter(_count_rows(in_path), progress)
    start = time.perf_counter()
    rows = auto = review = empty = meaningless = 0
    try:
        with CsvStream(in_path, encoding) as reader, \
                atomic_write(out_path, project=project, inputs=(in_path,), newline="") as dst:
            columns = reader.header
            if text_column not in columns:
                raise ValidationError([Problem(str(in_path), 1, f"no column '{text_column}'; the columns are: "
                                               + shown_columns(columns), text_column)])
            clash = [c for c in OUTPUT_COLUMNS if c in columns]
            if clash:
                raise ValidationError([Problem(str(in_path), 1, "the file already has the output column(s) "
                                               + ", ".join(clash) + "; rename them first")])
            added = list(OUTPUT_COLUMNS) + (["judge"] if judge is not None else [])
            if judge is not None and "judge" in columns:
                raise ValidationError([Problem(str(in_path), 1, "the file already has a 'judge' column; rename it")])
            text_at = columns.index(text_column)
            writer = csv.writer(dst)
            writer.writerow([safe_cell(c) for c in columns + added])
            for chunk in _chunks(iter(reader), BATCH_CHUNK):
                if cancel is not None:
                    cancel.check()
                cells_of: list[list[str]] = []
                for row_no, values in chunk:
                    if len(values) > len(columns) and any(v.strip() for v in values[len(columns):]):
                        raise ValidationError([Problem(str(in_path), row_no, f"{len(values)} cells but the header "
                                                       f"has {len(columns)}; nothing was written")])
                    cells_of.append(values[:len(columns)] + [""] * (len(columns) - len(values)))
                texts = [clean_text(cells[text_at]) for cells in cells_of]
                codable = [bool(t) and _text_problem(t, vocabulary) is None for t in texts]
                filled = [t for t, ok in zip(texts, codable) if ok]
                preds = iter(coder.predict_many(filled, judge.k if judge else 1)) if filled else iter(())
                for cells, text, ok in zip(cells_of, texts, codable):
                    rows += 1
                    verdict = ""
                    if not ok:
                        empty += not text
                        meaningless += bool(text)
                        extra = ["", "", version, "review"]
                    else:
                        best = next(preds)
                        if judge is not None and judge.unsure(best, threshold):
                            if cancel is not None:
                                cancel.check()
                            first = best[0][0]
                            best = judge.rerank(rows, text, best)
                            # a judge its fit gave no weight is not asked: the row says it was not judged
                            verdict = "" if judge.inert else ("changed" if best[0][0] != first else "agreed")
                            meter.update(rows, f"judging: {judge.judged} judged, {judge.reused} resumed",
                                         rows_per_s=rows / max(1e-9, time.perf_counter() - start))
                        code, prob = best[0] if best else ("", 0.0)
                        prob = round(prob, 4)     # the confidence as written decides: 0.29996 is '0.3000', 'auto' at 0.3
                        status = "auto" if best and prob >= threshold else "review"
                        auto += status == "auto"
                        review += status == "review"
                        extra = [code, f"{prob:.4f}", version, status]
                    if judge is not None:
                        extra.append(verdict)
                    writer.writerow([safe_cell(c) for c in cells + extra])
                meter.update(rows, "coding", rows_per_s=rows / max(1e-9, time.perf_counter() - start))
    except BaseException:
        if judge is not None:
            judge.close()   # the journal stays: a rerun resumes from it
        raise
    if judge is not None:
        judge.finish()
    review_state_path(out_path).unlink(missing_ok=True)
    meter.update(rows, "coded", force=True)
    return BatchResult(rows=rows, auto=auto, review=review + empty + meaningless, empty=empty,
                       seconds=time.perf_counter() - start, model_id=record.id, model_version=version,
                       out_path=out_path, judge=judge.summary() if judge is not None else None,
                       meaningless=meaningless)


def record_decision(project: Project, text: str, suggested_code: str | None, chosen_code: str, *,
                    model_id: int | None = None, confidence: float | None = None) -> Decision:
    """Store a coder's decision; it also becomes a real training text so the next training run learns from it.

    A text whose normalised form is already in the test split is recorded as a correction only: letting it
    into training would leak the test set into the next model.
    """
    suggested, chosen = suggested_code, chosen_code
    text = clean_text(text)
    if not text:
        raise StatcoderError("cannot record a decision for an empty text")
    for code in {chosen, suggested} - {None}:
        if project.conn.execute("SELECT 1 FROM codes WHERE code = ?", (code,)).fetchone() is None:
            raise UnknownCodeError(code)  # type: ignore[arg-type]
    kind = "confirmation" if suggested == chosen else "correction"
    key = normalise_key(text)
    with project.transaction() as conn:
        in_test = conn.execute("SELECT 1 FROM real_texts WHERE text_key = ? AND split = 'test' LIMIT 1",
                               (key,)).fetchone() is not None
        real_id = None
        if not in_test:
            real_id = int(conn.execute(
                "INSERT INTO real_texts (text, text_key, code, split, source) VALUES (?, ?, ?, 'train', ?)",
                (text, key, chosen, kind)).lastrowid)
        correction_id = int(conn.execute(
            "INSERT INTO corrections (text, suggested_code, chosen_code, kind, model_id, confidence, real_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (text, suggested, chosen, kind, model_id, confidence, real_id)).lastrowid)
    return Decision(correction_id, real_id, kind)


def record_uncodable(project: Project, text: str, suggested_code: str | None = None, *,
                     model_id: int | None = None, confidence: float | None = None) -> Decision:
    """Store that a text cannot be coded (empty of meaning, several activities, unreadable).

    It is kept as a decision of kind 'uncodable' so it can be counted, reviewed and undone, and it
    never becomes a training text.
    """
    text = clean_text(text)
    if not text:
        raise StatcoderError("cannot record a decision for an empty text")
    if suggested_code is not None and project.conn.execute(
            "SELECT 1 FROM codes WHERE code = ?", (suggested_code,)).fetchone() is None:
        raise UnknownCodeError(suggested_code)
    with project.transaction() as conn:
        correction_id = int(conn.execute(
            "INSERT INTO corrections (text, suggested_code, chosen_code, kind, model_id, confidence, real_id)"
            " VALUES (?, ?, NULL, ?, ?, ?, NULL)", (text, suggested_code, UNCODABLE, model_id, confidence)).lastrowid)
    return Decision(correction_id, None, UNCODABLE)


_DECISION_COLUMNS = "id, text, suggested_code, chosen_code, kind, real_id, created"


def get_decision(project: Project, correction_id: int) -> StoredDecision:
    row = project.conn.execute(f"SELECT {_DECISION_COLUMNS} FROM corrections WHERE id = ?", (correction_id,)).fetchone()
    if row is None:
        raise StatcoderError(f"decision {correction_id} does not exist (it may have been undone)")
    return StoredDecision(*row)


def recent_decisions(project: Project, limit: int = 50) -> list[StoredDecision]:
    """The newest decisions first, so the coding panel can show (and edit) them after a restart."""
    rows = project.conn.execute(f"SELECT {_DECISION_COLUMNS} FROM corrections ORDER BY id DESC LIMIT ?", (limit,))
    return [StoredDecision(*row) for row in rows]


def _drop_training_text(conn, decision: StoredDecision) -> None:
    # Only the training text this decision created: its source names the decision's kind.
    if decision.real_id is not None:
        conn.execute("DELETE FROM real_texts WHERE id = ? AND source IN ('confirmation', 'correction')",
                     (decision.real_id,))


def undo_decision(project: Project, correction_id: int) -> StoredDecision:
    """Remove a decision and the training text it created; returns what was removed."""
    decision = get_decision(project, correction_id)
    with project.transaction() as conn:
        conn.execute("DELETE FROM corrections WHERE id = ?", (correction_id,))
        _drop_training_text(conn, decision)
    return decision


def revise_decision(project: Project, correction_id: int, chosen_code: str | None) -> Decision:
    """Change a stored decision to another code, or (None) to 'cannot be coded'; its training text follows."""
    decision = get_decision(project, correction_id)
    if chosen_code is not None and project.conn.execute(
            "SELECT 1 FROM codes WHERE code = ?", (chosen_code,)).fetchone() is None:
        raise UnknownCodeError(chosen_code)
    if chosen_code is None:
        kind = UNCODABLE
    else:
        kind = "confirmation" if decision.suggested_code == chosen_code else "correction"
    with project.transaction() as conn:
        real_id = decision.real_id
        if chosen_code is None:
            _drop_training_text(conn, decision)
            real_id = None
        elif real_id is not None:
            conn.execute("UPDATE real_texts SET code = ?, source = ? WHERE id = ?", (chosen_code, kind, real_id))
        else:
            key = normalise_key(decision.text)
            in_test = conn.execute("SELECT 1 FROM real_texts WHERE text_key = ? AND split = 'test' LIMIT 1",
                                   (key,)).fetchone() is not None
            if not in_test:
                real_id = int(conn.execute(
                    "INSERT INTO real_texts (text, text_key, code, split, source) VALUES (?, ?, ?, 'train', ?)",
                    (decision.text, key, chosen_code, kind)).lastrowid)
        conn.execute("UPDATE corrections SET chosen_code = ?, kind = ?, real_id = ? WHERE id = ?",
                     (chosen_code, kind, real_id, correction_id))
    return Decision(correction_id, real_id, kind)
