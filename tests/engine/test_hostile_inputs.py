"""Issue 12: importers and reports against hostile input: absurd headers refused fast (the error, not
the time, is asserted), levels validated, NUL bytes and huge JSON fields refused, decode errors
naming the record, --code-digits checked, no `imports` row for an empty import, user text escaped
in markdown and kept out of matplotlib's mathtext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.classification import ColumnMapping, parse_generic
from engine.errors import ClassificationError, RealDataError
from engine.classification.reading import preview_file
from engine.realdata.importing import import_real_texts
from tests.engine.reliability_support import run_cli


def _wide(path: Path, columns: int) -> Path:
    header = ",".join(["code", "title"] + [f"c{i}" for i in range(columns - 2)])
    path.write_text(header + "\n01,A\n", encoding="utf-8")
    return path


def test_an_absurd_header_is_refused_with_a_clear_message(tmp_path, nace_project):
    wide = _wide(tmp_path / "wide.csv", 100_000)
    with pytest.raises(ClassificationError, match=r"row 1.*100,000 columns; at most 16,384"):
        parse_generic(wide, ColumnMapping())
    with pytest.raises(ClassificationError, match="at most 16,384"):
        preview_file(wide)
    with pytest.raises(RealDataError, match="at most 16,384"):
        import_real_texts(nace_project, wide, text_column="title", code_column="code")


def test_a_wide_but_allowed_header_with_duplicates_is_handled_linearly(tmp_path):
    # 16,000 columns, two named alike: found and named (the old check was quadratic in the columns).
    header = ["code", "title"] + [f"c{i}" for i in range(15_997)] + ["c5"]
    path = tmp_path / "dupes.csv"
    path.write_text(",".join(header) + "\n01,A\n", encoding="utf-8")
    with pytest.raises(ClassificationError, match="column 'c5' appears more than once"):
        parse_generic(path, ColumnMapping())


@pytest.mark.parametrize("level", ["0", "-2", "99999999999999999999999999", "21"])
def test_levels_outside_1_to_20_are_refused(tmp_path, level):
    path = tmp_path / "levels.csv"
    path.write_text(f"code,title,level\nA,Alpha,1\nA1,Alpha one,{level}\n", encoding="utf-8")
    with pytest.raises(ClassificationError, match=r"row 3.*level .* must be between 1 \(the top\) and 20"):
        parse_generic(path, ColumnMapping(level="level"))


def test_nul_bytes_and_huge_json_fields_are_refused(tmp_path):
    csv_nul = tmp_path / "nul.csv"
    csv_nul.write_bytes(b"code,title\nA,Alpha\nB,Be\x00ta\n")
    with pytest.raises(ClassificationError, match="row 3.*NUL"):
        parse_generic(csv_nul, ColumnMapping())
    json_nul = tmp_path / "nul.json"
    json_nul.write_text(json.dumps([{"code": "A", "title": "Al\u0000pha"}]), encoding="utf-8")
    with pytest.raises(ClassificationError, match="row 1.*NUL"):
        parse_generic(json_nul, ColumnMapping())
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps([{"code": "A", "title": "x" * 200_000}]), encoding="utf-8")
    with pytest.raises(ClassificationError, match="row 1, field 'title'.*200,000 characters"):
        parse_generic(huge, ColumnMapping())


def test_a_decode_error_names_the_record_not_the_physical_line(tmp_path):
    notes = '"line one\nline two\nline three"'
    rows = [f"0{i},Title {i},{notes}" for i in range(1, 5)]
    path = tmp_path / "multi.csv"
    path.write_bytes(("code,title,notes\n" + "\n".join(rows) + "\n").encode("utf-8") + b"05,Caf\xe9,x\n")
    with pytest.raises(ClassificationError) as err:
        parse_generic(path, ColumnMapping(notes="notes"))
    problem = err.value.problems[0]
    assert problem.row == 6 and "row 6 (line 14 of the file)" in str(err.value)


def test_code_digits_is_checked_and_an_empty_import_records_nothing(nace_project, tmp_path):
    path = tmp_path / "real.csv"
    path.write_text("text,code\nbaking bread,10.71\n", encoding="utf-8")
    for bad in (-3, 0):
        with pytest.raises(RealDataError, match="code digits"):
            import_real_texts(nace_project, path, text_column="text", code_column="code", code_digits=bad)
    before = nace_project.conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0]
    empty = tmp_path / "empty.csv"
    empty.write_text("text,code\n", encoding="utf-8")
    result = import_real_texts(nace_project, empty, text_column="text", code_column="code")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("text,code\nsomething,99.99\n", encoding="utf-8")
    import_real_texts(nace_project, unknown, text_column="text", code_column="code")
    assert result.imported == 0
    assert nace_project.conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == before


def test_the_quality_markdown_escapes_user_text(nace_project, tmp_path, capsys):
    from engine.curate.quality import md_cell

    assert md_cell("a|b\n<script>") == r"a\|b &lt;script&gt;"
    run = nace_project.conn.execute(
        "INSERT INTO generation_runs (name, strategies, codes, quota, seed, params) "
        "VALUES ('r', '[]', '[\"10.71\"]', 1, 0, '{}')").lastrowid
    nace_project.conn.execute(
        "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash, condition,"
        " seed, model_sha256, backend, params) VALUES (?, '10.71', 'bread', 'bread', 's', 'u', 'v', 'h', ?, 0, 'x',"
        " 'b', '{}')", (run, json.dumps({"tone": "<img src=x onerror=alert(1)>|pipe"})))
    out = tmp_path / "q.md"
    code, _, err = run_cli(capsys, "quality", "-p", nace_project.path, "--out", out, "--json")
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "<img" not in text and "&lt;img" in text


def test_a_code_with_dollars_does_not_break_the_report(tmp_path):
    from engine.evaluate.metrics import Hierarchy, compute_metrics
    from engine.evaluate.report import write_report

    codes = ["$x^$", "$\\frac{", "plain"]
    hierarchy = Hierarchy({c: None for c in codes}, {c: 1 for c in codes}, ["le$vel$"])
    gold = ["$x^$", "$\\frac{", "plain", "$x^$"]
    preds = [[("$\\frac{", 0.6), ("$x^$", 0.4)], [("$x^$", 0.7)], [("plain", 0.9)], [("plain", 0.5)]]
    result = compute_metrics(gold, preds, hierarchy)
    page = write_report(result, tmp_path / "report", title="$ report")
    assert page.exists() and (tmp_path / "report" / "confused.png").exists()
    assert "$x^$" in page.read_text(encoding="utf-8")


def test_a_report_that_fails_midway_leaves_no_partial_report(tmp_path, monkeypatch):
    import matplotlib.figure

    from engine.evaluate.metrics import Hierarchy, compute_metrics
    from engine.evaluate.report import write_report

    codes = ["a", "b"]
    result = compute_metrics(["a", "b"], [[("a", 0.9)], [("a", 0.6), ("b", 0.4)]],
                             Hierarchy({c: None for c in codes}, {c: 1 for c in codes}, ["level"]))
    savefig = matplotlib.figure.Figure.savefig
    calls = {"n": 0}

    def third_fails(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("a chart that cannot be drawn")
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", third_fails)
    with pytest.raises(ValueError):
        write_report(result, tmp_path / "report")
    assert list((tmp_path / "report").iterdir()) == []
