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


def _tiny_with_excludes(project):
    from engine.classification.model import ParsedClassification, RawCode, RawLink, import_parsed

    # as an importer reads 01.11's excludes: one link per code an item names, with the item's text
    links = [RawLink("01.11", "01.12", "growing of rice", 3, "x"), RawLink("01.11", "01.2", "seed processing", 3, "x"),
             RawLink("01.11", "02.10", "forestry and rice nurseries", 3, "x"),
             RawLink("01.11", "01.12", "forestry and rice nurseries", 3, "x"),
             RawLink("01.11", "02.10", "The class excludes hunting.", 3, "x")]
    excludes = "This class excludes:\n- growing of rice, see 01.12"
    codes = [RawCode("01", "Crops", 1), RawCode("01.1", "Non-perennial crops", 2, parent="01"),
             RawCode("01.11", "Growing of cereals", 3, parent="01.1", includes="growing of wheat", excludes=excludes),
             RawCode("01.12", "Growing of rice", 4, parent="01.1"),
             RawCode("01.2", "Seeds", 5, parent="01"),
             RawCode("01.21", "Seed processing for propagation", 6, parent="01.2"),
             RawCode("02", "Forestry", 7), RawCode("02.10", "Silviculture", 8, parent="02")]
    import_parsed(project, ParsedClassification("tiny", "test", [], codes, links))


def test_redirected_lines_follow_excludes_that_name_one_code(project):
    _tiny_with_excludes(project)
    plain = list(notes_pairs(project))
    pairs = list(notes_pairs(project, redirected=True))
    # the item names 01.12 alone: a line for it, after its own title
    assert ("growing of rice", "01.12") not in plain
    assert pairs.count(("growing of rice", "01.12")) == 0     # the same key as 01.12's title: not repeated
    assert ("seed processing", "01.21") in pairs                # group 01.2 holds one leaf: 01.21
    assert ("hunting", "02.10") in pairs                        # the sentence's lead-in is dropped
    # an item naming two codes says where none of it goes alone
    assert not any(text.startswith("forestry") for text, _ in pairs)
    # the excluding code never gets its own excluded activities
    assert {t for t, c in pairs if c == "01.11"} == {t for t, c in plain if c == "01.11"}
    assert set(plain) < set(pairs)
    only = list(notes_pairs(project, ["02.10"], redirected=True))
    assert {c for _, c in only} == {"02.10"} and ("hunting", "02.10") in only


def test_redirected_lines_on_nace(nace_project):
    pairs = set(notes_pairs(nace_project, ["01.13", "01.43", "01.44", "01.45"], redirected=True))
    # 01.11 excludes: "growing of sweet corn, see 01.13"
    assert ("growing of sweet corn", "01.13") in pairs
    # 10.51 excludes raw milk production "see 01.41, 01.43, 01.44, 01.45": several codes, so no line
    assert not any(text.startswith("production of raw milk") for text, _ in pairs)


def test_the_data_mix_takes_redirected_notes_by_default(project):
    from engine.coders.data import DataMix, build_training_data

    _tiny_with_excludes(project)
    on = build_training_data(project, DataMix(notes=1, validation_share=0))
    off = build_training_data(project, DataMix(notes=1, validation_share=0, redirected_notes=False))
    assert ("hunting", "02.10") in on.train and ("hunting", "02.10") not in off.train
    assert on.composition["redirected_notes"] is True and off.composition["redirected_notes"] is False
    assert len(on.train) == len(off.train) + 2


def test_cli_trains_with_or_without_redirected_notes(capsys, project):
    import json

    from engine.cli import main

    _tiny_with_excludes(project)
    path = str(project.path)
    project.close()
    counts = {}
    for flag in ("--redirected-notes", "--own-notes-only"):
        assert main(["coders", "train", "-p", path, "--kind", "lexical", "--validation-share", "0", "--no-default",
                     flag, "--json"]) == 0
        composition = json.loads(capsys.readouterr().out)["composition"]
        counts[flag] = (composition["redirected_notes"], composition["counts"]["notes"])
    assert counts == {"--redirected-notes": (True, 7), "--own-notes-only": (False, 5)}
