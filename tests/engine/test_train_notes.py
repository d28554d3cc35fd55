"""Notes lines: bullet items, sub-items joined to their head, headers and boilerplate stripped."""

from engine.classification import Code, get_code
from engine.classification.note_lines import code_lines, lines_from_note, notes_pairs
from engine.classification import leaf_codes_under

NACE_NOTE = """This class includes:
- production of dried, salted or smoked meat
- production of meat products such as:
  . sausages, salami
  . boiled ham"""

NAICS_NOTE = """This U.S. industry comprises establishments primarily engaged in growing citrus fruits (except oranges).

Illustrative Examples:

Mandarin groves
Lemon groves


Cross-References.
Establishments primarily engaged in growing oranges are classified in U.S. Industry 111310, Orange Groves."""


def test_nace_bullets_and_sub_items():
    assert lines_from_note(NACE_NOTE) == [
        "production of dried, salted or smoked meat",
        "production of meat products",
        "production of meat products sausages, salami",
        "production of meat products boiled ham",
    ]


def test_naics_lead_in_examples_and_cross_references():
    assert lines_from_note(NAICS_NOTE) == ["growing citrus fruits (except oranges)", "Mandarin groves", "Lemon groves"]


def test_empty_and_null_cells_give_nothing():
    assert lines_from_note("") == []
    assert lines_from_note("NULL") == []


def test_code_lines_title_first_and_deduplicated():
    code = Code("x", None, 1, "Lemon groves", "Illustrative Examples:\nLemon groves\nLime groves", "", "", "", True)
    assert code_lines(code) == ["Lemon groves", "Lime groves"]


def test_notes_pairs_on_nace(nace_project):
    lines = code_lines(get_code(nace_project, "10.11"))
    assert lines[0] == "Processing and preserving of meat"
    assert "processing of animal offal" in lines
    assert not any("includes" in line.lower() for line in lines)
    subset = leaf_codes_under(nace_project, ["10", "11"])
    assert len(subset) == 32
    pairs = list(notes_pairs(nace_project, subset))
    assert {c for _, c in pairs} == set(subset)
    assert len(pairs) > 3 * len(subset)
