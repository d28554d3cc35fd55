"""The review queue of a batch-coded CSV: rows left for a person, decisions saved beside the file as they are made."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.atomic import atomic_write
from engine.errors import StatcoderError

# The decision stored for a row marked as one that cannot be coded; it is written with an empty code
# and the status 'uncodable'.
UNCODABLE = "<uncodable>"


@dataclass(frozen=True)
class QueueItem:
    row: int            # 1-based data row of the coded file
    text: str
    code: str           # the coder's best code ('' for an empty text)
    confidence: float | None


class ReviewQueue:
    """Rows with status 'review' in a file written by engine.assist.coding.batch_code_csv.

    Decisions live in `<file>.review.json` and are written after each one, so closing the app loses
    nothing; `write_reviewed` produces the final file with the chosen codes and status 'reviewed'.
    Decisions are matched by row number, so the state records a hash of the file's rows (row number
    and text): a state saved for other rows (the file was coded again) is discarded, never applied;
    `discarded` says how many decisions that dropped.
    """

    def __init__(self, coded_path: str | Path, *, text_column: str) -> None:
        self.path = Path(coded_path)
        self.text_column = text_column
        self.state_path = self.path.with_name(self.path.name + ".review.json")
        self.items: list[QueueItem] = []
        digest = hashlib.sha256()
        with open(self.path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if text_column not in (reader.fieldnames or []) or "status" not in (reader.fieldnames or []):
                raise StatcoderError(f"{self.path} is not a batch-coded file with a '{text_column}' column")
            for row_no, row in enumerate(reader, start=1):
                digest.update(f"{row_no}\x1f{row.get(text_column) or ''}\x1e".encode("utf-8"))
                if row.get("status") == "review":
                    conf = row.get("confidence") or ""
                    self.items.append(QueueItem(row_no, row.get(text_column) or "", row.get("code") or "",
                                                float(conf) if conf else None))
        self.rows_sha256 = digest.hexdigest()
        self.decisions: dict[int, str] = {}
        self.discarded = 0
        if self.state_path.exists():
            try:
                saved = json.loads(self.state_path.read_text(encoding="utf-8"))
                decisions = {int(k): str(v) for k, v in saved.get("decisions", {}).items()}
            except (ValueError, AttributeError, TypeError):
                saved, decisions = {}, {}
            if saved.get("rows_sha256") == self.rows_sha256:
                self.decisions = decisions
            else:
                # Saved for other rows (or by a version that did not record them): applying it would
                # mark other texts 'reviewed' with codes chosen for something else.
                self.discarded = len(decisions)
                self.state_path.unlink(missing_ok=True)

    @property
    def done(self) -> int:
        return len(self.decisions)

    @property
    def total(self) -> int:
        return len(self.items)

    def next_pending(self, after: int | None = None) -> QueueItem | None:
        """The first undecided row, or (after a skip) the first undecided row after `after`, wrapping round.

        A skipped row stays undecided, so it comes back once the rows after it are done.
        """
        pending = [item for item in self.items if item.row not in self.decisions]
        if after is not None:
            later = [item for item in pending if item.row > after]
            return later[0] if later else (pending[0] if pending else None)
        return pending[0] if pending else None

    def item(self, row: int) -> QueueItem:
        found = next((item for item in self.items if item.row == row), None)
        if found is None:
            raise StatcoderError(f"row {row} of {self.path} is not in its review queue")
        return found

    def decide(self, row: int, code: str) -> None:
        """Record the chosen code of a row (UNCODABLE: it cannot be coded)."""
        self.item(row)
        self.decisions[row] = code
        self._save()

    def undo(self, row: int) -> None:
        """Forget the decision on a row: it is pending again."""
        self.decisions.pop(row, None)
        self._save()

    def _save(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"file": str(self.path), "rows_sha256": self.rows_sha256,
                                   "decisions": self.decisions}), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def write_reviewed(self, out_path: str | Path, *, project: object | None = None) -> int:
        """Copy the coded file with the reviewers' codes applied; returns the number of rows changed.

        Written whole or not at all; `project` (a Project or its path) is never overwritten."""
        out_path = Path(out_path)
        changed = 0
        with open(self.path, newline="", encoding="utf-8") as src, \
                atomic_write(out_path, project=project, newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
            writer.writeheader()
            for row_no, row in enumerate(reader, start=1):
                if row_no in self.decisions:
                    chosen = self.decisions[row_no]
                    if chosen == UNCODABLE:
                        row.update(code="", confidence="", status="uncodable")
                    else:
                        row.update(code=chosen, status="reviewed")
                    changed += 1
                writer.writerow(row)
        return changed
