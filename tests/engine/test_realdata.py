"""Real coded texts: code mapping, unknown codes, duplicates, and the hash split."""

from __future__ import annotations

import pytest

from engine.classification import import_builtin
from engine.errors import ProjectError, RealDataError
from engine.realdata.importing import import_real_texts, real_texts, split_of
from engine.text import normalise_key
from tests.conftest import shared_file, snapshot


def test_uk_sic_index_maps_onto_nace_classes_and_splits_about_half(project):
    import_builtin(project, "nace2")
    result = import_real_texts(project, shared_file("nace-uksic", "uksic2007_alphabetical_index.csv"),
                               text_column="Activity", code_column="UK SIC 2007", code_digits=4)
    assert result.rows_read == result.imported == 15957
    assert not result.unknown_codes and not result.duplicates
    assert 0.45 < result.test / result.imported < 0.55
    codes = {c for (c,) in project.conn.execute("SELECT DISTINCT code FROM real_texts")}
    assert len(codes) == 615
    assert all(len(c) == 5 and c[2] == "." for c in codes)
    row = project.conn.execute("SELECT code FROM real_texts WHERE text = 'Abattoir (manufacture)'").fetchone()
    assert row == ("10.11",)


def test_naics_index_reports_codes_outside_the_classification(project):
    import_builtin(project, "naics2017")
    result = import_real_texts(project, shared_file("naics", "2017", "2017_NAICS_Index_File.csv"),
                               text_column="INDEX ITEM DESCRIPTION", code_column="NAICS17", encoding="cp1252")
    assert result.rows_read == 20082
    assert result.imported + sum(map(len, result.unknown_codes.values())) + len(result.duplicates) == 20082
    assert "******" in result.unknown_codes
    assert any("not in the classification" in line for line in result.lines())


def test_split_depends_only_on_the_normalised_text():
    assert split_of(normalise_key("Bakery (manufacture)")) == split_of(normalise_key("  bakery  (MANUFACTURE). "))
    assert split_of("x", 0.0) == "train"
    keys = [f"text number {i}" for i in range(4000)]
    share = sum(split_of(k) == "test" for k in keys) / len(keys)
    assert 0.47 < share < 0.53


def test_duplicates_unknown_codes_and_conflicts_are_reported(project, tmp_path):
    import_builtin(project, "nace2")
    path = tmp_path / "real.csv"
    path.write_text("text,code\nBakery,10.71\n bakery ,10.71\nBakery,47.24\nMystery,99.99\n,10.71\nMill,10.61\n")
    result = import_real_texts(project, path, text_column="text", code_column="code")
    assert result.imported == 3
    assert result.duplicates == [3]
    assert result.unknown_codes == {"99.99": [5]}
    assert result.conflicts == [(4, "47.24", "10.71")]
    assert result.empty_rows == [6]
    # the same text always lands on the same side, whatever its code
    splits = {s for (s,) in project.conn.execute("SELECT split FROM real_texts WHERE text_key = 'bakery'")}
    assert len(splits) == 1
    # importing again adds nothing
    again = import_real_texts(project, path, text_column="text", code_column="code")
    assert again.imported == 0 and len(again.duplicates) == 4
    assert len(real_texts(project)) == 3


def test_bad_real_data_files_change_nothing(project, tmp_path):
    import_builtin(project, "nace2")
    before = snapshot(project)
    missing = tmp_path / "a.csv"
    missing.write_text("description,code\nx,10.71\n")
    with pytest.raises(RealDataError, match="column 'text' not found"):
        import_real_texts(project, missing, text_column="text", code_column="code")
    latin = tmp_path / "b.csv"
    latin.write_bytes("text,code\nCaf\u00e9,56.10\n".encode("cp1252"))
    with pytest.raises(RealDataError, match="row 2.*undecodable"):
        import_real_texts(project, latin, text_column="text", code_column="code")
    with pytest.raises(RealDataError, match="file not found"):
        import_real_texts(project, tmp_path / "none.csv", text_column="text", code_column="code")
    assert snapshot(project) == before


def test_real_texts_need_a_classification_first(project, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,code\nx,1\n")
    with pytest.raises(ProjectError, match="import a classification"):
        import_real_texts(project, path, text_column="text", code_column="code")
