"""Fuzzing the importers: every malformed file is refused with a clear error or imported correctly, never half.

Each example builds a small valid classification (or set of coded texts), breaks it with one to
three mutations at the record level (empty or duplicate codes, unknown parents, cycles, wrong
levels, dangling excludes, missing or renamed columns, extra cells, non-text JSON values) and at
the byte level (stray quotes, delimiters, NULs, bytes that are not valid in the encoding,
truncation, dropped, doubled or swapped lines), and imports it into a fresh project. Then either:
- the import raised a StatcoderError whose message names the file and the problem, and the
  project is byte-for-byte what it was (`snapshot`), or
- the import succeeded and the project is consistent: every parent exists, leaves have no
  children, levels follow the tree, nothing was invented, the import is recorded once, and an
  unmutated input comes back exactly.
Anything else (another exception type, a partial write) fails the test. About 1,100 examples in all.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.classification import ColumnMapping, import_parsed, parse_generic, parse_nace_ramon, parse_naics
from engine.errors import StatcoderError, ValidationError
from engine.store.project import Project
from engine.realdata.importing import import_real_texts, split_of
from engine.text import normalise_key
from tests.conftest import snapshot

EXAMPLES = {"generic_csv": 300, "generic_json": 250, "nace": 250, "naics": 250, "real": 300}


def fuzz_settings(name: str) -> settings:
    # derandomize: CI runs the same 1,100 inputs every time; a failure reproduces on any machine.
    return settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# Inputs --------------------------------------------------------------------------------------------

WORDS = ["growing", "rice", "bread", "of", "and", "repair", "services", "n.e.c.", "café", "Öl", "“quoted”",
         "a,b", "semi;colon", "tab\there", "pipe|bar", 'say "hi"', "line\nbreak", "  padded  ", "—", "日本"]
STRAY_BYTES = [b'"', b",", b";", b"\t", b"|", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xfe\xff", b"\xe9",
               b"\x81", b"\xef\xbb\xbf", b"{", b"]", b"\\", b"'", b"#NAME?", b"\xc3"]


def title_of(data) -> str:
    return data.draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join))


@dataclass
class Outcome:
    """Tally of one fuzz test, asserted at its end so that both branches are known to be exercised."""

    malformed: int = 0
    rejected: int = 0
    imported: int = 0
    messages: list[str] = field(default_factory=list)


def byte_mutation(data, raw: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["insert", "truncate", "delete", "dup_line", "drop_line", "swap_lines",
                                      "random"]))
    pos = data.draw(st.integers(0, max(0, len(raw))))
    lines = raw.split(b"\n")
    line = data.draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "insert":
        return raw[:pos] + data.draw(st.sampled_from(STRAY_BYTES)) + raw[pos:]
    if kind == "truncate":
        return raw[:pos]
    if kind == "delete":
        return raw[:pos] + raw[pos + data.draw(st.integers(1, 12)):]
    if kind == "dup_line":
        return b"\n".join(lines[: line + 1] + lines[line:])
    if kind == "drop_line":
        return b"\n".join(lines[:line] + lines[line + 1:])
    if kind == "swap_lines":
        other = data.draw(st.integers(0, max(0, len(lines) - 1)))
        lines[line], lines[other] = lines[other], lines[line]
        return b"\n".join(lines)
    return raw[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos:]


def draw_plan(data, mutations: list[str], max_mutations: int = 2) -> tuple[list[str], int]:
    """(record-level mutations, number of byte-level ones); one example in ten is left intact as a control."""
    if data.draw(st.sampled_from([False] * 9 + [True])):
        return [], 0
    chosen = data.draw(st.lists(st.sampled_from(mutations), max_size=max_mutations))
    return chosen, data.draw(st.integers(0 if chosen else 1, 2))


def render_csv(columns: list[str], records: list[dict], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([str(record.get(c, "")) for c in columns])
    return buffer.getvalue().encode(encoding, errors="replace")


def check_rejection(exc: StatcoderError, path: Path, outcome: Outcome) -> None:
    message = str(exc)
    assert message.strip() and "Traceback" not in message
    if isinstance(exc, ValidationError):
        assert exc.problems, message
        for problem in exc.problems:
            assert Path(problem.file).name in {path.name} | {p.name for p in path.parent.iterdir()}, message
            assert problem.problem.strip(), message
        assert path.name in message or any(Path(p.file).name in message for p in exc.problems), message
    outcome.rejected += 1
    outcome.messages.append(message.splitlines()[0])


def check_classification(project: Project, before_imports: int) -> dict[str, tuple]:
    """The stored tree is consistent; returns code -> (parent, level, title, is_leaf)."""
    conn = project.conn
    rows = {r[0]: r[1:] for r in conn.execute("SELECT code, parent, level, title, is_leaf FROM codes")}
    assert rows, "an import that succeeds stores codes"
    parents = {parent for parent, *_ in rows.values() if parent}
    for code, (parent, level, title, is_leaf) in rows.items():
        assert code.strip() == code and code, code
        assert title.strip(), code
        assert parent is None or parent in rows, (code, parent)
        assert bool(is_leaf) == (code not in parents), code
    assert conn.execute("SELECT COUNT(*) FROM code_links WHERE target NOT IN (SELECT code FROM codes)"
                        " OR code NOT IN (SELECT code FROM codes)").fetchone()[0] == 0
    imports = list(conn.execute("SELECT kind, rows FROM imports"))
    assert len(imports) == before_imports + 1 and imports[-1] == ("classification", len(rows))
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert project.get_setting("classification")["name"]
    return rows


def check_levels_follow_tree(rows: dict[str, tuple]) -> None:
    for code, (parent, level, *_rest) in rows.items():
        assert level == (rows[parent][1] + 1 if parent else 1), code


def attempt(outcome: Outcome, path: Path, project: Project, action, *, mutated: bool):
    """Run an import; on failure check the error and that nothing changed. Returns the result or None."""
    before = snapshot(project)
    outcome.malformed += int(mutated)
    try:
        result = action()
    except StatcoderError as exc:
        check_rejection(exc, path, outcome)
        assert snapshot(project) == before, f"a refused import changed the project: {exc}"
        return None
    outcome.imported += 1
    return result


class Workspace:
    """Fresh files and projects for each example, under the test's tmp_path."""

    def __init__(self, root: Path, template: Path):
        self.root, self.template, self.n = root, template, 0

    def next_dir(self) -> Path:
        self.n += 1
        path = self.root / f"ex{self.n}"
        path.mkdir()
        return path

    def project(self, folder: Path) -> Project:
        # A copy of a migrated template: creating each project anew costs a dozen fsyncs.
        shutil.copy(self.template, folder / "p.statcoder")
        return Project.open(folder / "p.statcoder")


@pytest.fixture(scope="module")
def empty_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("empty-template") / "empty.statcoder"
    with Project.create(path) as project:
        project.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def finish(outcome: Outcome, name: str) -> None:
    assert outcome.malformed >= 0.8 * EXAMPLES[name], outcome
    assert outcome.rejected > EXAMPLES[name] // 10, outcome
    assert outcome.imported > 0, outcome


# Generic CSV and JSON -------------------------------------------------------------------------------

def generic_records(data) -> list[dict]:
    records = []
    for i in range(data.draw(st.integers(1, 3))):
        top = f"{i + 1:02d}"
        records.append({"code": top, "title": title_of(data), "parent": "", "excludes": ""})
        for j in range(data.draw(st.integers(0, 3))):
            records.append({"code": f"{top}.{j + 1}", "title": title_of(data), "parent": top, "excludes": ""})
    for record in records:
        if data.draw(st.booleans()) and len(records) > 1:
            target = data.draw(st.sampled_from([r["code"] for r in records if r is not record]))
            record["excludes"] = f"- {title_of(data)}, see {target}"
    return records


RECORD_MUTATIONS = ["blank_code", "dup_code", "unknown_parent", "self_parent", "cycle", "blank_title",
                    "dangling_exclude", "drop_column", "rename_column", "extra_cells", "bad_value"]


def mutate_records(data, records: list[dict], columns: list[str], kind: str) -> list[str]:
    """Apply one record-level mutation in place; returns the (possibly changed) column list."""
    victim = data.draw(st.sampled_from(records))
    if kind == "blank_code":
        victim["code"] = data.draw(st.sampled_from(["", "   "]))
    elif kind == "dup_code":
        records.append(dict(victim, title=title_of(data)))
    elif kind == "unknown_parent":
        victim["parent"] = "99.9"
    elif kind == "self_parent":
        victim["parent"] = victim["code"]
    elif kind == "cycle" and len(records) > 1:
        other = data.draw(st.sampled_from([r for r in records if r is not victim]))
        victim["parent"], other["parent"] = other["code"], victim["code"]
    elif kind == "blank_title":
        victim["title"] = data.draw(st.sampled_from(["", " ", "\t"]))
    elif kind == "dangling_exclude":
        victim["excludes"] = "- growing of moon rocks, see 77.7"
    elif kind == "drop_column":
        return [c for c in columns if c != data.draw(st.sampled_from(columns))]
    elif kind == "rename_column":
        name = data.draw(st.sampled_from(columns))
        return [c + "_x" if c == name else c for c in columns]
    elif kind == "extra_cells":
        victim["__extra__"] = "surplus"
        return columns + ["__extra__"] if data.draw(st.booleans()) else columns
    elif kind == "bad_value":
        victim[data.draw(st.sampled_from(["code", "title"]))] = data.draw(
            st.sampled_from([None, 17, 3.5, True, ["a"], {"k": "v"}]))
    return columns


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_generic_importer(tmp_path, empty_template, suffix):
    name = "generic_csv" if suffix == ".csv" else "generic_json"
    outcome, space = Outcome(), Workspace(tmp_path, empty_template)

    @fuzz_settings(name)
    @given(st.data())
    def check(data):
        records = generic_records(data)
        with_parent = data.draw(st.booleans())
        columns = ["code", "title"] + (["parent"] if with_parent else []) + ["excludes"]
        mutations, byte_mutations = draw_plan(data, RECORD_MUTATIONS)
        for kind in mutations:
            if kind != "extra_cells" or suffix == ".csv":
                columns = mutate_records(data, records, columns, kind)
        if suffix == ".csv":
            for record in records:
                for key in ("code", "title"):
                    record[key] = "" if record[key] is None else record[key]
            raw = render_csv(columns, records, delimiter=data.draw(st.sampled_from([",", ";", "\t"])))
        else:
            items = [{k: v for k, v in r.items() if k in columns or k == "__extra__"} for r in records]
            raw = json.dumps(items if data.draw(st.booleans()) else {"codes": items}, ensure_ascii=False).encode()
        for _ in range(byte_mutations):
            raw = byte_mutation(data, raw)
        folder = space.next_dir()
        path = folder / f"classification{suffix}"
        path.write_bytes(raw)
        mapping = ColumnMapping(parent="parent" if with_parent else None, excludes="excludes")
        with space.project(folder) as project:
            result = attempt(outcome, path, project, mutated=bool(mutations or byte_mutations),
                             action=lambda: import_parsed(project, parse_generic(path, mapping)))
            if result is None:
                return
            rows = check_classification(project, 0)
            check_levels_follow_tree(rows)
            text = raw.decode("utf-8", errors="replace")
            for code, (_parent, _level, title, _leaf) in rows.items():
                assert code in text, f"invented code {code!r}"
            if not mutations and not byte_mutations:
                assert rows == {r["code"]: (r["parent"] or None, 1 + (r["parent"] != ""), r["title"].strip(),
                                            rows[r["code"]][3]) for r in records}

    check()
    finish(outcome, name)


# NACE in RAMON layout -------------------------------------------------------------------------------

NACE_COLUMNS = ["Level", "Code", "Parent", "Description", "This item includes", "This item also includes",
                "Rulings", "This item excludes"]


def nace_records(data) -> list[dict]:
    records = []
    for s, section in enumerate(data.draw(st.lists(st.sampled_from("ABC"), min_size=1, max_size=2, unique=True))):
        records.append({"Level": 1, "Code": section, "Parent": "", "Description": title_of(data)})
        for d in range(data.draw(st.integers(1, 2))):
            division = f"{s * 10 + d + 1:02d}"
            records.append({"Level": 2, "Code": division, "Parent": section, "Description": title_of(data)})
            for g in range(data.draw(st.integers(0, 2))):
                group = f"{division}.{g + 1}"
                records.append({"Level": 3, "Code": group, "Parent": division, "Description": title_of(data)})
                for c in range(data.draw(st.integers(0, 2))):
                    records.append({"Level": 4, "Code": f"{group}{c + 1}", "Parent": group,
                                    "Description": title_of(data)})
    classes = [r["Code"] for r in records if r["Level"] == 4]
    for record in records:
        if classes and data.draw(st.booleans()):
            target = data.draw(st.sampled_from(classes))
            record["This item excludes"] = f"This class excludes:\n- {title_of(data)}, see {target}"
    return records


def spreadsheet_damage(code: str, level: int) -> str:
    """What a spreadsheet round trip does to NACE codes: leading and trailing zeros go ('01.10' -> '1.1')."""
    if level == 1:
        return code
    whole, _, decimals = code.partition(".")
    return str(int(whole)) + ("." + decimals.rstrip("0") if decimals.rstrip("0") else "")


NACE_MUTATIONS = ["bad_level", "level_out_of_range", "non_numeric", "no_parent", "dup_code", "blank_title",
                  "dangling_exclude", "drop_column", "extra_cells", "wrong_parent"]


def test_nace_ramon_importer(tmp_path, empty_template):
    outcome, space = Outcome(), Workspace(tmp_path, empty_template)

    @fuzz_settings("nace")
    @given(st.data())
    def check(data):
        records = nace_records(data)
        damaged = data.draw(st.booleans())
        columns = list(NACE_COLUMNS)
        surplus_row = b""
        mutations, byte_mutations = draw_plan(data, NACE_MUTATIONS)
        for kind in mutations:
            victim = data.draw(st.sampled_from(records))
            if kind == "bad_level":
                victim["Level"] = data.draw(st.sampled_from(["", "x", "2.5", "-1"]))
            elif kind == "level_out_of_range":
                victim["Level"] = data.draw(st.sampled_from([0, 5, 99]))
            elif kind == "non_numeric" and victim["Level"] != 1:
                victim["Code"] = data.draw(st.sampled_from(["x1", "1..2", "01-1", "A"]))
            elif kind == "no_parent" and victim["Level"] != 1:
                victim["Parent"] = ""
            elif kind == "wrong_parent" and victim["Level"] != 1:
                victim["Parent"] = "77"
            elif kind == "dup_code":
                records.append(dict(victim))
            elif kind == "blank_title":
                victim["Description"] = "#NAME?"
            elif kind == "dangling_exclude":
                victim["This item excludes"] = "- smelting of unobtainium, see 88.88"
            elif kind == "drop_column" and columns:
                columns.remove(data.draw(st.sampled_from(columns)))
            elif kind == "extra_cells":  # a row longer than the header
                surplus_row = b"4,01.19,01.1,Surplus,,,,,surplus\n"
        rendered = [dict(r, Code=spreadsheet_damage(r["Code"], r["Level"]) if damaged and isinstance(
            r["Level"], int) and 1 < r["Level"] <= 4 and re.fullmatch(r"\d+(\.\d+)?", r["Code"]) else r["Code"],
                         Parent=spreadsheet_damage(r["Parent"], r["Level"] - 1) if damaged and isinstance(
                             r["Level"], int) and r["Level"] > 2 and re.fullmatch(r"\d+(\.\d+)?", r["Parent"])
                         else r["Parent"]) for r in records]
        raw = render_csv(columns, rendered) + surplus_row
        for _ in range(byte_mutations):
            raw = byte_mutation(data, raw)
        folder = space.next_dir()
        path = folder / "nace.csv"
        path.write_bytes(raw)
        with space.project(folder) as project:
            result = attempt(outcome, path, project, mutated=bool(mutations or byte_mutations),
                             action=lambda: import_parsed(project, parse_nace_ramon(path)))
            if result is None:
                return
            rows = check_classification(project, 0)
            for code, (parent, level, _title, _leaf) in rows.items():
                pattern = {1: r"[A-Z]", 2: r"\d\d", 3: r"\d\d\.\d", 4: r"\d\d\.\d\d"}[level]
                assert re.fullmatch(pattern, code), (code, level)
                assert (parent is None) == (level == 1) and (parent is None or rows[parent][1] == level - 1)
            if not mutations and not byte_mutations:
                assert set(rows) == {r["Code"] for r in records}

    check()
    finish(outcome, "nace")


# NAICS descriptions + cross-references --------------------------------------------------------------

def naics_records(data) -> tuple[list[dict], list[dict]]:
    codes = []
    for sector in data.draw(st.lists(st.sampled_from(["11", "21", "31-33"]), min_size=1, max_size=2, unique=True)):
        codes.append({"Code": sector, "Title": title_of(data) + data.draw(st.sampled_from(["", "T"])),
                      "Description": title_of(data)})
        first = "31" if sector == "31-33" else sector
        for s in range(data.draw(st.integers(1, 2))):
            code = f"{first}{s + 1}"
            codes.append({"Code": code, "Title": title_of(data), "Description": title_of(data)})
            for _ in range(data.draw(st.integers(0, 3))):
                code = code + "1"
                codes.append({"Code": code, "Title": title_of(data), "Description": title_of(data)})
    for code in codes:  # the Census files are cp1252: what it cannot encode never reaches them
        for key in ("Title", "Description"):
            code[key] = code[key].encode("cp1252", errors="replace").decode("cp1252")
    known = [c["Code"] for c in codes if "-" not in c["Code"]]
    xrefs = [{"Code": data.draw(st.sampled_from(known)),
              "CrossReference": f"Establishments primarily engaged in {title_of(data)} are classified in "
                                f"U.S. Industry {data.draw(st.sampled_from(known))}."}
             for _ in range(data.draw(st.integers(0, 3)))]
    return codes, xrefs


NAICS_MUTATIONS = ["not_a_code", "orphan", "dup_code", "blank_title", "drop_column", "extra_cells",
                   "no_code_xref", "undefined_cp1252"]


def test_naics_importer(tmp_path, empty_template):
    outcome, space = Outcome(), Workspace(tmp_path, empty_template)

    @fuzz_settings("naics")
    @given(st.data())
    def check(data):
        codes, xrefs = naics_records(data)
        columns, xcolumns = ["Code", "Title", "Description"], ["Code", "CrossReference"]
        mutations, byte_mutations = draw_plan(data, NAICS_MUTATIONS)
        desc_extra = b""
        for kind in mutations:
            victim = data.draw(st.sampled_from(codes))
            if kind == "not_a_code":
                victim["Code"] = data.draw(st.sampled_from(["1", "1234567", "11a", "31-3", ""]))
            elif kind == "orphan":
                xrefs.append({"Code": "999999", "CrossReference": "Establishments are classified in Sector 11."})
            elif kind == "dup_code":
                codes.append(dict(victim))
            elif kind == "blank_title":
                victim["Title"] = " "
            elif kind == "drop_column" and columns:
                columns.remove(data.draw(st.sampled_from(columns)))
            elif kind == "extra_cells":
                victim["x"] = "surplus"
                columns.append("x") if data.draw(st.booleans()) else None
            elif kind == "no_code_xref":
                xrefs.append({"Code": victim["Code"],
                              "CrossReference": "Establishments are classified according to the primary activity."})
            elif kind == "undefined_cp1252":
                desc_extra = b'"111","Bad \x81 byte",""\n'
        descriptions = render_csv(columns, codes, encoding="cp1252") + desc_extra
        cross_references = render_csv(xcolumns, xrefs) if xrefs or data.draw(st.booleans()) else None
        for _ in range(byte_mutations):
            if cross_references is not None and data.draw(st.booleans()):
                cross_references = byte_mutation(data, cross_references)
            else:
                descriptions = byte_mutation(data, descriptions)
        folder = space.next_dir()
        path, xpath = folder / "descriptions.csv", folder / "xref.csv"
        path.write_bytes(descriptions)
        if cross_references is not None:
            xpath.write_bytes(cross_references)
        with space.project(folder) as project:
            result = attempt(outcome, path, project, mutated=bool(mutations or byte_mutations),
                             action=lambda: import_parsed(project, parse_naics(
                                 path, xpath if cross_references is not None else None)))
            if result is None:
                return
            rows = check_classification(project, 0)
            check_levels_follow_tree(rows)
            for code, (parent, *_rest) in rows.items():
                assert re.fullmatch(r"\d{2,6}|\d{2}-\d{2}", code), code
                assert code.encode("cp1252") in descriptions
            if not mutations and not byte_mutations:
                assert set(rows) == {c["Code"] for c in codes}
                assert {rows[c["Code"]][2] for c in codes} == {c["Title"].strip().removesuffix("T").strip()
                                                              if re.search(r"[a-z)]T$", c["Title"].strip())
                                                              else c["Title"].strip() for c in codes}

    check()
    finish(outcome, "naics")


# Real coded texts -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("real-template")
    (folder / "codes.csv").write_text("code,title\n01,Farming\n01.1,Crops\n01.2,Animals\n02,Forestry\n"
                                      "02.1,Logging\n", encoding="utf-8")
    path = folder / "template.statcoder"
    with Project.create(path) as project:
        import_parsed(project, parse_generic(folder / "codes.csv", ColumnMapping()))
        project.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


REAL_TEXTS = ["Growing wheat", "wheat farming", "Dairy cows", "sheep rearing", "timber felling", "Logging camp",
              "  spaced   out text ", "“curly” quotes", "- listed item", "café owner", "n/a"]
REAL_MUTATIONS = ["unknown_code", "blank_text", "dup_row", "conflict", "drop_column", "rename_column",
                  "extra_cells", "blank_code"]


def test_real_data_importer(tmp_path, real_template):
    outcome, space = Outcome(), Workspace(tmp_path, real_template)

    @fuzz_settings("real")
    @given(st.data())
    def check(data):
        leaves = ["01.1", "01.2", "02.1"]
        rows = [{"text": data.draw(st.sampled_from(REAL_TEXTS)) + f" {i}", "code": data.draw(st.sampled_from(leaves))}
                for i in range(data.draw(st.integers(1, 8)))]
        columns = ["text", "code"]
        mutations, byte_mutations = draw_plan(data, REAL_MUTATIONS, 3)
        for kind in mutations:
            victim = data.draw(st.sampled_from(rows))
            if kind == "unknown_code":
                victim["code"] = data.draw(st.sampled_from(["99.9", "01", "x", "01.1.1"]))
            elif kind == "blank_text":
                victim["text"] = data.draw(st.sampled_from(["", "   ", "\n"]))
            elif kind == "dup_row":
                rows.append(dict(victim))
            elif kind == "conflict":
                rows.append({"text": victim["text"].upper(), "code": "02.1" if victim["code"] != "02.1" else "01.1"})
            elif kind == "drop_column" and columns:
                columns.remove(data.draw(st.sampled_from(columns)))
            elif kind == "rename_column":
                columns = [c.title() if c == "code" else c for c in columns]
            elif kind == "extra_cells":
                victim["extra"] = "surplus"
                columns.append("extra") if data.draw(st.booleans()) else rows.append({"text": "a", "code": "b,c,d"})
            elif kind == "blank_code":
                victim["code"] = ""
        raw = render_csv(columns, rows, delimiter=data.draw(st.sampled_from([",", ";"])))
        for _ in range(byte_mutations):
            raw = byte_mutation(data, raw)
        folder = space.next_dir()
        path = folder / "texts.csv"
        path.write_bytes(raw)
        with space.project(folder) as project:
            codes_before = snapshot(project)
            result = attempt(outcome, path, project, mutated=bool(mutations or byte_mutations),
                             action=lambda: import_real_texts(project, path, text_column="text", code_column="code"))
            if result is None:
                return
            stored = list(project.conn.execute("SELECT text, text_key, code, split, import_id FROM real_texts"))
            known = {r[0] for r in project.conn.execute("SELECT code FROM codes")}
            assert len(stored) == result.imported == result.train + result.test
            assert result.rows_read == (result.imported + sum(map(len, result.unknown_codes.values()))
                                        + len(result.duplicates) + len(result.empty_rows))
            assert len({(key, code) for _, key, code, _, _ in stored}) == len(stored)
            for text, key, code, split, import_id in stored:
                assert text and text == text.strip() and key == normalise_key(text)
                assert code in known and split == split_of(key) and import_id is not None
            assert [r for r in snapshot(project) if "real_texts" not in r and "imports" not in r] == \
                [r for r in codes_before if "real_texts" not in r and "imports" not in r]
            if not mutations and not byte_mutations:
                assert {(t.strip() and normalise_key(t), c) for t, c in ((r["text"], r["code"]) for r in rows)} == \
                    {(key, code) for _, key, code, _, _ in stored}

    check()
    finish(outcome, "real")
