"""Code search that finds what people type: stemmed FTS5 over codes, titles and notes, ranked, typo-tolerant."""

from __future__ import annotations

import pytest

from engine.classification import ColumnMapping, import_parsed, parse_generic, search_codes
from engine.store.project import Project


def codes(project, query, **kw):
    return [c.code for c in search_codes(project, query, **kw)]


def test_dairy_finds_operation_of_dairies_on_the_real_nace_file(nace_project):
    found = codes(nace_project, "dairy", limit=10)
    assert "10.51" in found                        # "Operation of dairies and cheese making"
    assert codes(nace_project, "dairies") == found[:len(codes(nace_project, "dairies"))]
    assert codes(nace_project, "operation dairies") == ["10.51"]


def test_title_words_rank_above_words_only_in_the_notes(nace_project):
    found = codes(nace_project, "bakery", limit=20)
    assert found.index("10.7") < found.index("10.71")  # "bakery" in 10.7's title; in 10.71's notes only
    cocoa = codes(nace_project, "cocoa", limit=5)
    assert cocoa[:2] == ["10.82", "46.37"]             # title hits in classification order, then the notes


def test_codes_match_by_prefix_exact_code_first_with_or_without_dots(nace_project):
    assert codes(nace_project, "10.5") == ["10.5", "10.51", "10.52"]
    assert codes(nace_project, "1051") == ["10.51"]
    assert codes(nace_project, "10.71")[0] == "10.71"


def test_the_last_word_matches_as_a_prefix_while_typing(nace_project):
    assert "11.05" in codes(nace_project, "manufacture of be", limit=50)


def test_typos_fall_back_to_the_closest_words(nace_project):
    assert codes(nace_project, "bakry", limit=3)[0] == "10.7"
    assert codes(nace_project, "bakry", leaves_only=True) == codes(nace_project, "bakery", leaves_only=True)
    assert "11.05" in codes(nace_project, "bere", limit=5) or "11.05" in codes(nace_project, "beer manufactre")


def test_a_description_whose_words_are_not_all_in_one_code_still_ranks_codes(nace_project):
    assert "10.71" in codes(nace_project, "bakery making bread and cakes", limit=3)


@pytest.mark.parametrize("query", ['NOT', 'a OR', '"', 'x*', 'title: bread', '(', 'NEAR(a b)', 'ü'])
def test_fts_syntax_in_a_query_is_only_text(nace_project, query):
    codes(nace_project, query)   # never an FTS syntax error


def test_leaves_only_and_titles_only(nace_project):
    assert all("." in c and len(c) == 5 for c in codes(nace_project, "dairy", leaves_only=True, limit=50))
    assert codes(nace_project, "yoghurt") == ["10.51"]                  # in its includes, not its title
    assert "10.51" not in codes(nace_project, "yoghurt", in_notes=False)


def test_the_index_follows_a_classification_import(project, tmp_path):
    path = tmp_path / "isco.csv"
    path.write_text("Code,Title,Notes\n2,Professionals,\n22,Health professionals,\n"
                    "2211,Generalist medical practitioners,Doctors diagnosing illnesses\n", encoding="utf-8")
    import_parsed(project, parse_generic(path, ColumnMapping(code="Code", title="Title", notes="Notes")))
    assert codes(project, "doctor") == ["2211"]                     # stemmed: doctors -> doctor
    assert codes(project, "practitioner") == ["2211"]


def test_a_project_from_before_the_index_gets_it_filled_on_open(project):
    path = project.path
    with project.transaction() as conn:
        conn.execute("INSERT INTO codes (code, parent, level, title, is_leaf, ord) VALUES ('A', NULL, 1, "
                     "'Operation of dairies', 1, 0)")
        for name in ("codes_search_insert", "codes_search_delete", "codes_search_update"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE code_search")
        conn.execute("DELETE FROM _migrations WHERE name = 'm090_code_search'")
    project.close()
    with Project.open(path) as reopened:
        assert codes(reopened, "dairy") == ["A"]
