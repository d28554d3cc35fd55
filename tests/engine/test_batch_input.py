"""Issue 12: batch coding reads what Excel writes (BOM, cp1252, ';'), refuses ragged rows and bad
thresholds, neutralises formulas in its output, and never applies a review state saved for other rows."""

from __future__ import annotations

import csv
import json

import pytest

from engine.assist.coding import batch_code_csv
from engine.errors import StatcoderError, ValidationError
from engine.assist.review_queue import ReviewQueue
from tests.engine.reliability_support import register_fake_model


@pytest.fixture
def fake(nace_project, monkeypatch):
    register_fake_model(nace_project, monkeypatch)
    return nace_project


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_utf8_bom_and_semicolons_read_like_the_importers(fake, tmp_path):
    src = tmp_path / "excel.csv"
    src.write_bytes("\ufefftext;id\r\nsure bakery;1\r\nother;2\r\n".encode("utf-8"))
    result = batch_code_csv(fake, src, tmp_path / "out.csv", text_column="text")
    rows = _rows(tmp_path / "out.csv")
    assert result.rows == 2 and [r["text"] for r in rows] == ["sure bakery", "other"]
    assert rows[0]["id"] == "1" and rows[0]["status"] == "auto" and rows[1]["status"] == "review"


def test_a_cp1252_byte_names_the_row_and_writes_nothing(fake, tmp_path):
    src = tmp_path / "cp.csv"
    src.write_bytes(b'text,id\n"a long\nquoted text",1\nfine,2\ncaf\xe9,3\n')
    out = tmp_path / "out.csv"
    with pytest.raises(ValidationError) as err:
        batch_code_csv(fake, src, out, text_column="text")
    assert "row 4" in str(err.value) and "cp1252" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("*.part"))
    result = batch_code_csv(fake, src, out, text_column="text", encoding="cp1252")
    assert result.rows == 3 and _rows(out)[2]["text"] == "café"


def test_ragged_rows_and_bad_thresholds_are_refused(fake, tmp_path):
    src = tmp_path / "ragged.csv"
    src.write_text("text,id\nbread,1\nbeer,2,extra\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"row 3.*3 cells but the header has 2"):
        batch_code_csv(fake, src, tmp_path / "out.csv", text_column="text")
    short = tmp_path / "short.csv"
    short.write_text("text,id\nbread\n", encoding="utf-8")
    assert batch_code_csv(fake, short, tmp_path / "out.csv", text_column="text").rows == 1
    for bad in (-0.1, 1.5):
        with pytest.raises(StatcoderError, match="threshold must be between 0 and 1"):
            batch_code_csv(fake, short, tmp_path / "out.csv", text_column="text", threshold=bad)


def test_nul_bytes_in_a_batch_input_are_refused_with_the_row(fake, tmp_path):
    src = tmp_path / "nul.csv"
    src.write_bytes(b"text,id\nbread,1\nbe\x00er,2\n")
    with pytest.raises(ValidationError, match="row 3.*NUL"):
        batch_code_csv(fake, src, tmp_path / "out.csv", text_column="text")


def test_formulas_in_the_output_are_neutralised(fake, tmp_path):
    src = tmp_path / "f.csv"
    src.write_text('text,note\n"=HYPERLINK(""http://x"",""y"")",+1+2\n@SUM(A1),-3\n', encoding="utf-8")
    batch_code_csv(fake, src, tmp_path / "out.csv", text_column="text")
    rows = _rows(tmp_path / "out.csv")
    assert rows[0]["text"].startswith("'=") and rows[0]["note"] == "'+1+2"
    assert rows[1]["text"] == "'@SUM(A1)" and rows[1]["note"] == "-3"


def test_a_review_state_saved_for_other_rows_is_never_applied(fake, tmp_path):
    first = tmp_path / "a.csv"
    first.write_text("text\nalpha\nbeta\n", encoding="utf-8")
    out = tmp_path / "a.coded.csv"
    batch_code_csv(fake, first, out, text_column="text")
    queue = ReviewQueue(out, text_column="text")
    queue.decide(1, "10.71")
    assert ReviewQueue(out, text_column="text").decisions == {1: "10.71"}

    # The same coded file's name, other texts: by the CLI (which once kept the state) ...
    second = tmp_path / "b.csv"
    second.write_text("text\ngamma\ndelta\n", encoding="utf-8")
    batch_code_csv(fake, second, out, text_column="text")
    fresh = ReviewQueue(out, text_column="text")
    assert fresh.decisions == {}
    fresh.write_reviewed(tmp_path / "reviewed.csv")
    assert all(r["status"] != "reviewed" for r in _rows(tmp_path / "reviewed.csv"))

    # ... or a state written by an older version, or for a file rewritten by another tool.
    state = out.with_name(out.name + ".review.json")
    state.write_text(json.dumps({"file": str(out), "decisions": {"1": "10.71"}}), encoding="utf-8")
    stale = ReviewQueue(out, text_column="text")
    assert stale.decisions == {} and stale.discarded == 1
