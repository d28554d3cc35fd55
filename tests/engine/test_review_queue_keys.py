"""The review queue of a batch-coded file: a skipped row stays pending, a decision can be undone, and a
row marked as one that cannot be coded is written with the status 'uncodable'."""

from __future__ import annotations

import csv

from engine.assist.review_queue import UNCODABLE, ReviewQueue


def coded_file(tmp_path):
    path = tmp_path / "a.coded.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "code", "confidence", "model_version", "status"])
        writer.writerows([("a", "10.71", "0.2", "1:x", "review"), ("b", "11.05", "0.9", "1:x", "auto"),
                          ("c", "10.82", "0.3", "1:x", "review"), ("d", "", "", "1:x", "review")])
    return path


def test_skip_undo_and_uncodable(tmp_path):
    queue = ReviewQueue(coded_file(tmp_path), text_column="text")
    assert [i.row for i in queue.items] == [1, 3, 4]
    assert queue.next_pending(after=1).row == 3          # skip row 1
    assert queue.next_pending(after=4).row == 1          # wraps round to the skipped row
    queue.decide(3, "10.82")
    queue.decide(4, UNCODABLE)
    queue.undo(3)
    again = ReviewQueue(queue.path, text_column="text")   # saved as it goes
    assert again.decisions == {4: UNCODABLE} and again.next_pending().row == 1
    out = tmp_path / "a.reviewed.csv"
    assert again.write_reviewed(out) == 1
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert (rows[3]["code"], rows[3]["status"]) == ("", "uncodable")
    assert rows[2]["status"] == "review"
