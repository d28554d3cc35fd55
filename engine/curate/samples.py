"""Samples as the Review page lists them (filters, current flag reasons), and a reviewer's edits and relabels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from engine.classification import get_code
from engine.errors import StatcoderError
from engine.store.project import Project
from engine.text import clean_text, normalise_key


@dataclass(frozen=True)
class SampleFilter:
    """Every field is optional; `code` matches the code and every code below it."""

    code: str | None = None
    run_id: int | None = None
    rule: str | None = None          # samples with a current flag of this rule; "any" for any flag
    strategy: str | None = None
    status: str | None = None        # accepted | rejected
    text: str | None = None          # substring, case-insensitive


@dataclass(frozen=True)
class SampleRow:
    id: int
    run_id: int
    code: str
    text: str
    strategy: str
    status: str
    status_by: str
    flags: tuple[str, ...]           # "rule: reason" of the current, not overridden flags
    original_code: str | None
    original_text: str | None
    curated_code: str | None = None  # the label curation gave it (it trains this code); None: its own code

    @property
    def label(self) -> str:
        """The code this sample trains."""
        return self.curated_code or self.code


def _where(f: SampleFilter) -> tuple[str, list]:
    clauses, args = ["1"], []
    if f.code:
        clauses.append("(s.code = ? OR s.code IN (WITH RECURSIVE sub(c) AS (SELECT ? UNION ALL "
                       "SELECT codes.code FROM codes JOIN sub ON codes.parent = sub.c) SELECT c FROM sub))")
        args += [f.code, f.code]
    if f.run_id is not None:
        clauses.append("s.run_id = ?")
        args.append(f.run_id)
    if f.strategy:
        clauses.append("s.strategy = ?")
        args.append(f.strategy)
    if f.status:
        clauses.append("s.status = ?")
        args.append(f.status)
    if f.text:
        clauses.append("instr(lower(s.text), ?) > 0")
        args.append(f.text.casefold())
    if f.rule:
        rule_clause = "" if f.rule == "any" else " AND fl.rule = ?"
        clauses.append("EXISTS (SELECT 1 FROM sample_flags fl WHERE fl.sample_id = s.id AND "
                       f"fl.curation_id = s.curation_id AND NOT fl.overridden{rule_clause})")
        if f.rule != "any":
            args.append(f.rule)
    return " AND ".join(clauses), args


def count_samples(project: Project, f: SampleFilter = SampleFilter()) -> int:
    where, args = _where(f)
    return project.conn.execute(f"SELECT COUNT(*) FROM samples s WHERE {where}", args).fetchone()[0]


_SELECT = (
    "SELECT s.id, s.run_id, s.code, s.text, s.strategy, s.status, s.status_by, s.original_code, s.original_text,"
    " (SELECT group_concat(fl.rule || ': ' || fl.reason, char(10)) FROM sample_flags fl"
    "  WHERE fl.sample_id = s.id AND fl.curation_id = s.curation_id AND NOT fl.overridden), s.curated_code"
    " FROM samples s"
)


def _row(r: tuple) -> SampleRow:
    return SampleRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[9].split("\n")) if r[9] else (), r[7], r[8],
                     r[10])


def list_samples(project: Project, f: SampleFilter = SampleFilter(), *, limit: int = 500,
                 offset: int = 0) -> list[SampleRow]:
    """One page of samples matching the filter, in generation order, with their current flag reasons."""
    where, args = _where(f)
    rows = project.conn.execute(f"{_SELECT} WHERE {where} ORDER BY s.id LIMIT ? OFFSET ?", [*args, limit, offset])
    return [_row(r) for r in rows]


def get_sample(project: Project, sample_id: int) -> SampleRow:
    row = project.conn.execute(f"{_SELECT} WHERE s.id = ?", (sample_id,)).fetchone()
    if row is None:
        raise StatcoderError(f"no sample {sample_id} in this project")
    return _row(row)


def sample_ids(project: Project, f: SampleFilter) -> list[int]:
    """Every sample id matching a filter: the target of a bulk action."""
    where, args = _where(f)
    return [r[0] for r in project.conn.execute(f"SELECT s.id FROM samples s WHERE {where} ORDER BY s.id", args)]


def filter_choices(project: Project) -> dict[str, list]:
    """The runs, strategies and flag rules present, for the filter menus."""
    conn = project.conn
    return {
        "runs": [r[0] for r in conn.execute("SELECT DISTINCT run_id FROM samples ORDER BY run_id")],
        "strategies": [r[0] for r in conn.execute("SELECT DISTINCT strategy FROM samples ORDER BY strategy")],
        "rules": [r[0] for r in conn.execute("SELECT DISTINCT rule FROM sample_flags ORDER BY rule")],
    }


def edit_sample(project: Project, sample_id: int, *, text: str | None = None, code: str | None = None) -> SampleRow:
    """A reviewer's correction of a sample's text or label. The first original is kept; the sample is
    then accepted by the user, so later curations do not overturn it, and a label curation gave it is
    dropped: the reviewer's code is the one it trains."""
    row = project.conn.execute("SELECT text, code FROM samples WHERE id = ?", (sample_id,)).fetchone()
    if row is None:
        raise StatcoderError(f"no sample {sample_id} in this project")
    new_text = clean_text(text) if text is not None else row[0]
    if not new_text:
        raise StatcoderError("a sample's text cannot be empty")
    new_code = code if code is not None else row[1]
    get_code(project, new_code)
    with project.transaction() as conn:
        conn.execute(
            "UPDATE samples SET original_text = COALESCE(original_text, CASE WHEN ? != text THEN text END),"
            " original_code = COALESCE(original_code, CASE WHEN ? != code THEN code END),"
            " text = ?, text_key = ?, code = ?, curated_code = NULL, status = 'accepted', status_by = 'user'"
            " WHERE id = ?",
            (new_text, new_code, new_text, normalise_key(new_text), new_code, sample_id))
    return get_sample(project, sample_id)


def samples_after(project: Project, run_id: int, after_id: int, *, limit: int = 50) -> list[SampleRow]:
    """A run's samples written after a given sample id, newest last: the Generate page's live stream."""
    rows = project.conn.execute(f"{_SELECT} WHERE s.run_id = ? AND s.id > ? ORDER BY s.id DESC LIMIT ?",
                                (run_id, after_id, limit)).fetchall()
    return [_row(r) for r in reversed(rows)]


def condition_coverage(project: Project, run_id: int, dimensions: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Samples per code and per condition value ('writer=...', 'length=...') of one run.

    Each grid dimension's values are counted separately, so the matrix stays readable however many
    cells the grid has. Samples whose condition holds none of `dimensions` (the run's grid; all keys
    when None), such as those grounded in one note line, count under their strategy in brackets.
    """
    import json

    wanted = set(dimensions) if dimensions is not None else None
    out: dict[str, dict[str, int]] = {}
    for code, strategy, condition, n in project.conn.execute(
            "SELECT code, strategy, condition, COUNT(*) FROM samples WHERE run_id = ? GROUP BY code, strategy, condition",
            (run_id,)):
        cells = out.setdefault(code, {})
        try:
            value = json.loads(condition) if condition else None
        except ValueError:
            value = None
        items = sorted(value.items()) if isinstance(value, dict) else []
        keys = [f"{k}={v}" for k, v in items if wanted is None or k in wanted] or [f"({strategy})"]
        for key in keys:
            cells[key] = cells.get(key, 0) + n
    return out
