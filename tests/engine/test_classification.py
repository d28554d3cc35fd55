"""Classification importers on the real files, and malformed input refused with the project unchanged."""

from __future__ import annotations

import json

import pytest

from engine.classification import (
    ColumnMapping, ancestors, children, get_code, import_builtin, import_parsed, links_from, links_to,
    parse_generic, parse_nace_ramon, parse_naics, search_codes, siblings,
)
from engine.classification.excludes import parse_item, split_items
from engine.classification.nace import repair_code
from engine.errors import ClassificationError, ProjectError, UnknownCodeError
from tests.conftest import shared_file, snapshot


def test_nace_from_the_shared_ramon_file(project):
    result = import_parsed(project, parse_nace_ramon(shared_file("nace-uksic", "NACE_REV2_20221103_144244.csv")))
    assert result.codes == 996
    assert result.leaf_codes == 615
    assert result.per_level == {1: 21, 2: 88, 3: 272, 4: 615}
    assert result.links >= 1000
    rice = get_code(project, "01.12")
    assert rice.title == "Growing of rice" and rice.parent == "01.1" and rice.is_leaf
    assert [a.code for a in ancestors(project, "01.30")] == ["A", "01", "01.3"]
    # zeros repaired in the middle and at the end, parent included
    assert get_code(project, "01.30").parent == "01.3"
    targets = {(l.text, l.target) for l in links_from(project, "01.11")}
    assert ("growing of rice", "01.12") in targets
    assert ("growing of maize for fodder", "01.19") in targets
    assert any(l.code == "01.11" for l in links_to(project, "01.12"))
    # '#NAME?' cells from the spreadsheet round trip are treated as empty
    assert project.conn.execute("SELECT COUNT(*) FROM codes WHERE notes LIKE '%#NAME?%'").fetchone()[0] == 0


def test_nace_code_repair_is_lossless():
    assert repair_code("1.3", 4) == "01.30"
    assert repair_code("1.11", 4) == "01.11"
    assert repair_code("10.1", 3) == "10.1"
    assert repair_code("1.1", 3) == "01.1"
    assert repair_code("1", 2) == "01"
    assert repair_code("A", 1) == "A"
    with pytest.raises(ValueError):
        repair_code("x.1", 4)


def test_naics_from_the_shared_files(project):
    base = shared_file("naics", "2017")
    result = import_parsed(project, parse_naics(base / "2017_NAICS_Descriptions.csv",
                                                base / "2017_NAICS_Cross_References.csv"))
    assert result.leaf_codes == 1057
    assert result.per_level[5] == 1057
    assert result.per_level[1] == 20  # 17 two-digit sectors plus 31-33, 44-45, 48-49
    assert result.links > 4000
    assert result.unresolved_links == []  # references to sector 31 resolve to 31-33
    assert any("name no code" in w for w in result.warnings)
    bakeries = get_code(project, "311812")
    assert bakeries.title == "Commercial Bakeries"  # the trailing Census 'T' marker is stripped
    assert "Cross-References" not in bakeries.includes
    assert ("Manufacturing cookies and crackers", "311821") in {(l.text, l.target) for l in links_from(project, "311812")}
    assert get_code(project, "311").parent == "31-33"
    assert not get_code(project, "311812").parent is None


def test_builtins_import_and_queries(project):
    import_builtin(project, "nace2")
    assert {c.code for c in children(project, "10.7")} == {"10.71", "10.72", "10.73"}
    assert {s.code for s in siblings(project, "10.71")} == {"10.72", "10.73"}
    assert search_codes(project, "10.71")[0].code == "10.71"
    assert "10.71" in [c.code for c in search_codes(project, "bread", leaves_only=True)]
    assert search_codes(project, "") == []
    with pytest.raises(UnknownCodeError, match="99.99"):
        get_code(project, "99.99")


def test_second_classification_is_refused(project):
    import_builtin(project, "nace2")
    before = snapshot(project)
    with pytest.raises(ProjectError, match="already holds the classification 'NACE Rev. 2'"):
        import_builtin(project, "naics2017")
    assert snapshot(project) == before


def test_excludes_parsing():
    text = "This class excludes:\n- growing of rice, see 01.12\n- growing of maize for fodder, see 01.19\n  and more"
    items = split_items(text)
    assert items == ["growing of rice, see 01.12", "growing of maize for fodder, see 01.19 and more"]
    parsed = parse_item(items[0])
    assert parsed.text == "growing of rice" and "01.12" in parsed.references
    assert parse_item("no reference in this line") is None


# generic import --------------------------------------------------------------------------------

def _csv(tmp_path, text: str, name: str = "c.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_generic_csv_derives_parents_from_codes(project, tmp_path):
    path = _csv(tmp_path, "Code,Name,Excl\n1,Managers,\n11,Chief executives,\n111,Legislators,"
                          "\"- judges, see 2611\"\n2,Professionals,\n26,Legal,\n261,Legal professionals,\n"
                          "2611,Lawyers,\n")
    result = import_parsed(project, parse_generic(path, ColumnMapping(code="Code", title="Name", excludes="Excl")))
    assert result.codes == 7 and result.per_level == {1: 2, 2: 2, 3: 2, 4: 1}
    assert get_code(project, "2611").parent == "261"
    assert links_from(project, "111")[0].target == "2611"


def test_generic_json_with_parent_column(project, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"codes": [
        {"id": "X", "label": "Top", "up": None},
        {"id": "X1", "label": "Child", "up": "X", "inc": "things"}]}))
    result = import_parsed(project, parse_generic(path, ColumnMapping(code="id", title="label", parent="up",
                                                                      includes="inc")))
    assert result.codes == 2 and get_code(project, "X1").includes == "things"


MALFORMED = [
    ("duplicate code", "Code,Title\n01,A\n01,B\n", "row 3.*duplicate code '01' \\(first seen on row 2\\)"),
    ("unknown parent", "Code,Title,Parent\n01,A,\n02,B,99\n", "row 3.*unknown parent '99'"),
    ("cycle", "Code,Title,Parent\n01,A,02\n02,B,01\n", "parent cycle: 0[12] -> 0[12] -> 0[12]"),
    ("empty title", "Code,Title\n01,A\n02,  \n", "row 3.*empty title for code '02'"),
    ("link to unknown", "Code,Title,Excl\n01,A,\"- x, see 07\"\n", "row 2.*link to unknown code '07'"),
    ("missing column", "Kode,Title\n01,A\n", "column 'Code' not found"),
    ("empty file", "", "the file is empty"),
    ("bad level", "Code,Title,Level\n01,A,one\n", "row 2.*level 'one' is not a whole number"),
    ("extra cells", "Code,Title\n01,A,surprise\n", "row 2: 3 cells but the header has 2"),
    ("empty code", "Code,Title\n,A\n", "row 2.*empty code"),
    ("own parent", "Code,Title,Parent\n01,A,01\n", "row 2.*(its own parent|cycle)"),
]


@pytest.mark.parametrize("kind,content,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_generic_csv_is_refused_and_changes_nothing(project, tmp_path, kind, content, message):
    import_builtin  # noqa: B018 - the project starts empty; compare everything after the failure
    path = _csv(tmp_path, content)
    columns = content.split("\n", 1)[0].split(",")
    mapping = ColumnMapping(code="Code", title="Title",
                            parent="Parent" if "Parent" in columns else None,
                            level="Level" if "Level" in columns else None,
                            excludes="Excl" if "Excl" in columns else None)
    before = snapshot(project)
    with pytest.raises(ClassificationError, match=message) as info:
        import_parsed(project, parse_generic(path, mapping))
    assert str(path) in str(info.value)
    assert snapshot(project) == before


def test_undecodable_bytes_name_the_line(project, tmp_path):
    path = _csv(tmp_path, "Code,Title\n01,Caf\u00e9s\n", encoding="cp1252")
    before = snapshot(project)
    with pytest.raises(ClassificationError, match=r"row 2.*undecodable byte 0xe9.*not valid utf-8"):
        import_parsed(project, parse_generic(path, ColumnMapping(code="Code", title="Title")))
    assert snapshot(project) == before
    # the same file with the right encoding imports
    assert import_parsed(project, parse_generic(path, ColumnMapping(code="Code", title="Title"),
                                                encoding="cp1252")).codes == 1


@pytest.mark.parametrize("content,message", [
    ("{not json", "invalid JSON"),
    ('{"a": 1}', "expected a JSON list"),
    ('[1, 2]', "item 1 is a int, not an object"),
    ('[{"code": "1"}]', "field 'title' is missing"),
])
def test_malformed_json_is_refused(project, tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    before = snapshot(project)
    with pytest.raises(ClassificationError, match=message):
        import_parsed(project, parse_generic(path, ColumnMapping()))
    assert snapshot(project) == before


def test_broken_nace_file_reports_every_bad_row(project, tmp_path):
    header = "Order,Level,Code,Parent,Description,This item includes,This item also includes,Rulings,This item excludes\n"
    path = _csv(tmp_path, header + "1,1,A,,Agri,,,,\n2,2,x1,A,Crops,,,,\n3,9,1.1,1,Bad level,,,,\n")
    before = snapshot(project)
    with pytest.raises(ClassificationError) as info:
        import_parsed(project, parse_nace_ramon(path))
    assert "row 3" in str(info.value) and "not a numeric NACE code" in str(info.value)
    assert "row 4" in str(info.value) and "level '9'" in str(info.value)
    assert snapshot(project) == before


def test_naics_cross_references_for_unknown_codes_are_refused(project, tmp_path):
    desc = _csv(tmp_path, 'Code,Title,Description\n11,FarmsT,x\n111,CropsT,y\n', "d.csv", "cp1252")
    xref = _csv(tmp_path, 'Code,CrossReference\n999,"Things--are classified in Industry 111, Crops."\n', "x.csv")
    with pytest.raises(ClassificationError, match="cross-references for unknown codes: 999"):
        parse_naics(desc, xref)
