"""Reviewing curation: user decisions, flag overrides, flag listings and counts, the curated dataset and its export."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine.atomic import atomic_write, check_output_path, safe_cell
from engine.errors import StatcoderError
from engine.coders.fasttext.bindings import LABEL as FASTTEXT_LABEL, preprocess
from engine.store.project import Project
from engine.curate.store import STATUSES, refresh_status

# A sample's training label: what curation relabelled it to, else the code it was generated for.
LABEL = "COALESCE(s.curated_code, s.code)"


@dataclass(frozen=True)
class FlagView:
    """One current flag with its sample, as the Review page lists it."""

    id: int
    sample_id: int
    run_id: int
    code: str
    text: str
    rule: str
    reason: str
    suggested_code: str | None
    overridden: bool
    status: str
    status_by: str


@dataclass(frozen=True)
class FlagCount:
    flagged: int        # samples with a current flag of this rule
    overridden: int
    rejected: int       # of those, samples whose status is 'rejected'


def _ids(values: Sequence[int]) -> list[int]:
    ids = sorted({int(v) for v in values})
    if not ids:
        raise StatcoderError("no ids given")
    return ids


def _marks(ids: Sequence) -> str:
    return ",".join("?" * len(ids))


def _check_exist(project: Project, table: str, ids: list[int]) -> None:
    found = {r[0] for r in project.conn.execute(f"SELECT id FROM {table} WHERE id IN ({_marks(ids)})", ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        what = "sample" if table == "samples" else "flag"
        raise StatcoderError(f"no {what} {', '.join(map(str, missing[:10]))} in this project")


def set_sample_status(project: Project, sample_ids: Sequence[int], status: str, by: str = "user") -> int:
    """Accept or reject samples. A 'user' decision sticks through later curations; a 'rule' one does not
    overwrite a user's. Returns the number of samples changed."""
    if status not in STATUSES:
        raise StatcoderError(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    if by not in ("user", "rule"):
        raise StatcoderError(f"a status is set by 'user' or 'rule', not '{by}'")
    ids = _ids(sample_ids)
    _check_exist(project, "samples", ids)
    guard = "" if by == "user" else " AND status_by != 'user'"
    with project.transaction() as conn:
        cur = conn.execute(f"UPDATE samples SET status = ?, status_by = ? WHERE id IN ({_marks(ids)}){guard}",
                           [status, by, *ids])
    return cur.rowcount


def clear_user_status(project: Project, sample_ids: Sequence[int]) -> int:
    """Undo user decisions: the samples' status follows their current flags again."""
    ids = _ids(sample_ids)
    _check_exist(project, "samples", ids)
    with project.transaction() as conn:
        conn.execute(f"UPDATE samples SET status_by = 'default' WHERE id IN ({_marks(ids)}) AND status_by = 'user'",
                     ids)
        return refresh_status(conn, ids)


def override_flag(project: Project, flag_ids: Sequence[int], *, overridden: bool = True) -> int:
    """Override flags (or undo an override); the samples' status is recomputed unless a user decided it."""
    ids = _ids(flag_ids)
    _check_exist(project, "sample_flags", ids)
    with project.transaction() as conn:
        conn.execute(f"UPDATE sample_flags SET overridden = ? WHERE id IN ({_marks(ids)})", [int(overridden), *ids])
        samples = [r[0] for r in conn.execute(
            f"SELECT DISTINCT sample_id FROM sample_flags WHERE id IN ({_marks(ids)})", ids)]
        return refresh_status(conn, samples)


def _run_filter(run_ids: Sequence[int] | None) -> tuple[str, list]:
    if run_ids is None:
        return "", []
    return f" AND s.run_id IN ({_marks(run_ids) or 'NULL'})", list(run_ids)


def list_flags(project: Project, *, run_ids: Sequence[int] | None = None, rule: str | None = None,
               code: str | None = None, limit: int | None = None) -> list[FlagView]:
    """Current flags (those of the last curation that judged each sample), newest samples last."""
    where, args = _run_filter(run_ids)
    if rule:
        where, args = where + " AND f.rule = ?", args + [rule]
    if code:
        where, args = where + " AND s.code = ?", args + [code]
    sql = ("SELECT f.id, s.id, s.run_id, s.code, s.text, f.rule, f.reason, f.suggested_code, f.overridden,"
           " s.status, s.status_by FROM sample_flags f JOIN samples s ON s.id = f.sample_id"
           f" WHERE f.curation_id = s.curation_id{where} ORDER BY s.id, f.id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [FlagView(*r[:8], bool(r[8]), r[9], r[10]) for r in project.conn.execute(sql, args)]


def flag_counts(project: Project, *, run_ids: Sequence[int] | None = None) -> dict[str, FlagCount]:
    """Per rule: samples flagged now, overridden, and rejected."""
    where, args = _run_filter(run_ids)
    rows = project.conn.execute(
        "SELECT f.rule, COUNT(DISTINCT s.id), COUNT(DISTINCT CASE WHEN f.overridden THEN s.id END),"
        " COUNT(DISTINCT CASE WHEN s.status = 'rejected' THEN s.id END)"
        " FROM sample_flags f JOIN samples s ON s.id = f.sample_id"
        f" WHERE f.curation_id = s.curation_id{where} GROUP BY f.rule ORDER BY COUNT(DISTINCT s.id) DESC", args)
    return {rule: FlagCount(n, o, r) for rule, n, o, r in rows}


def status_counts(project: Project, *, run_ids: Sequence[int] | None = None) -> dict[str, int]:
    where, args = _run_filter(run_ids)
    rows = project.conn.execute(
        f"SELECT s.status || '/' || s.status_by, COUNT(*) FROM samples s WHERE 1{where} GROUP BY 1", args)
    return dict(rows.fetchall())


def accepted_samples(project: Project, run_ids: Sequence[int] | None = None,
                     codes: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(text, code) of accepted samples, in generation order: the curated training data. The code is
    the curated label where curation relabelled a sample, else the code it was generated for."""
    where, args = _run_filter(run_ids)
    if codes is not None:
        where, args = where + f" AND {LABEL} IN ({_marks(codes) or 'NULL'})", args + list(codes)
    return [(t, c) for t, c in project.conn.execute(
        f"SELECT s.text, {LABEL} FROM samples s WHERE s.status = 'accepted'{where} ORDER BY s.id", args)]


def uncurated_samples(project: Project, *, run_ids: Sequence[int] | None = None,
                      codes: Sequence[str] | None = None) -> int:
    """Accepted samples that no curation has judged and no reviewer decided on: training would take them
    as they came out of the model, junk included ("Manufacture of bakery, bakery, bakery")."""
    where, args = _run_filter(run_ids)
    if codes is not None:
        where, args = where + f" AND {LABEL} IN ({_marks(codes) or 'NULL'})", args + list(codes)
    return project.conn.execute(
        f"SELECT COUNT(*) FROM samples s WHERE s.status = 'accepted' AND s.curation_id IS NULL"
        f" AND s.status_by != 'user'{where}", args).fetchone()[0]


def export_curated(project: Project, path: str | Path, *, fmt: str = "fasttext",
                   run_ids: Sequence[int] | None = None, include_rejected: bool = False) -> int:
    """Write the curated samples as fastText training lines or CSV (with status and flags); returns rows."""
    path = Path(path)
    if fmt not in ("fasttext", "csv"):
        raise StatcoderError(f"export format must be 'fasttext' or 'csv', not '{fmt}'")
    check_output_path(path, project=project)
    if fmt == "fasttext":
        if include_rejected:
            raise StatcoderError("the fastText export holds training data: accepted samples only")
        lines = 0
        with atomic_write(path, project=project) as handle:
            # write_training_file's format, written through the atomic helper.
            for text, code in accepted_samples(project, run_ids):
                tokens = preprocess(text)
                if tokens:
                    handle.write(f"{FASTTEXT_LABEL}{code} {tokens}\n")
                    lines += 1
        return lines
    where, args = _run_filter(run_ids)
    if not include_rejected:
        where += " AND s.status = 'accepted'"
    rows = project.conn.execute(
        f"SELECT s.id, s.run_id, {LABEL}, s.code, s.text, s.strategy, s.condition, s.status, s.status_by,"
        " (SELECT group_concat(f.rule, ';') FROM sample_flags f"
        "   WHERE f.sample_id = s.id AND f.curation_id = s.curation_id AND NOT f.overridden)"
        f" FROM samples s WHERE 1{where} ORDER BY s.id", args).fetchall()
    with atomic_write(path, project=project, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "run_id", "code", "generated_code", "text", "strategy", "condition", "status",
                         "status_by", "flags"])
        for row in rows:
            writer.writerow([safe_cell(v) for v in (*row[:9], row[9] or "")])
    return len(rows)
