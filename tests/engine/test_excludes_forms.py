"""Generic imports find the links other classifications write: ISCO-08's "classified elsewhere" lines,
"(see 2221)", "→ 2221", "classified in 2221", and any other form through an excludes pattern."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from engine.classification import ColumnMapping, import_parsed, links_from, parse_generic
from engine.classification.model import validate
from engine.errors import ClassificationError
from tests.conftest import REPO

ISCO = [
    ("2", "Professionals", "", ""),
    ("21", "Science and engineering professionals", "", ""),
    ("211", "Physical and earth science professionals", "", ""),
    ("2111", "Physicists and astronomers",
     "Some related occupations classified elsewhere:\n- Medical physicist - 2111\n- Geologist - 2114\n"
     "– Meteorologist – 2112", ""),
    ("2112", "Meteorologists", "Climate modelling (see 2111)", ""),
    ("2114", "Geologists and geophysicists", "", "Prospecting for oil.\n\nSome related occupations classified "
                                                 "elsewhere:\n- Mining engineer - 2146\n\nOther notes."),
    ("214", "Engineering professionals", "", ""),
    ("2146", "Mining engineers, metallurgists and related professionals", "Quarry managers → 1322", ""),
    ("22", "Health professionals", "", ""),
    ("222", "Nursing and midwifery professionals", "", ""),
    ("2221", "Nursing professionals", "Midwives are classified in 2222", ""),
    ("2222", "Midwifery professionals", "", ""),
    ("1", "Managers", "", ""),
    ("13", "Production and specialised services managers", "", ""),
    ("132", "Manufacturing, mining, construction and distribution managers", "", ""),
    ("1322", "Mining managers", "", ""),
]


@pytest.fixture
def isco_csv(tmp_path):
    path = tmp_path / "isco.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ISCO 08 Code", "Title EN", "Excluded occupations", "Notes"])
        writer.writerows(ISCO)
    return path


MAPPING = ColumnMapping(code="ISCO 08 Code", title="Title EN", excludes="Excluded occupations", notes="Notes")


def test_isco_style_references_become_links(project, isco_csv):
    parsed = parse_generic(isco_csv, MAPPING)
    links = {(link.code, link.target, link.text) for link in parsed.links}
    assert ("2111", "2114", "Geologist") in links
    assert ("2111", "2112", "Meteorologist") in links                     # en dashes
    assert not any(code == target for code, target, _ in links)          # "Medical physicist - 2111": itself
    assert ("2112", "2111", "Climate modelling") in links                 # "(see 2111)"
    assert ("2114", "2146", "Mining engineer") in links                   # under the notes' header
    assert ("2146", "1322", "Quarry managers") in links                   # "→ 1322"
    assert ("2221", "2222", "Midwives") in links                          # "are classified in"
    problems, _warnings, resolvable = validate(parsed)
    assert not problems and len(resolvable) == 6
    result = import_parsed(project, parsed)
    assert result.links == 6
    assert [link.target for link in links_from(project, "2111")] == ["2114", "2112"]


def test_an_excludes_pattern_finds_references_written_another_way(project, tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("code,title,excludes\nA,Crops,\nA1,Grain,Rice growing [A2]; maize [A3]\nA2,Rice,\nA3,Maize,\n",
                    encoding="utf-8")
    mapping = ColumnMapping(code="code", title="title", excludes="excludes")
    assert parse_generic(path, mapping).links == []                      # the built-in forms miss it
    parsed = parse_generic(path, mapping, excludes_pattern=r"\[(\w+)\]")
    assert [(link.code, link.target) for link in parsed.links] == [("A1", "A2"), ("A1", "A3")]
    named = parse_generic(path, mapping, excludes_pattern=r"(?P<text>[A-Za-z ]+?) \[(?P<code>\w+)\]")
    assert [(link.target, link.text) for link in named.links] == [("A2", "Rice growing"), ("A3", "maize")]
    with pytest.raises(ClassificationError, match="not a valid regular expression"):
        parse_generic(path, mapping, excludes_pattern=r"[(")
    with pytest.raises(ClassificationError, match="name the one that holds the code"):
        parse_generic(path, mapping, excludes_pattern=r"(\w)\[(\w+)\]")


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "engine", *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_cli_checks_before_writing_and_takes_an_excludes_pattern(tmp_path, isco_csv):
    from engine.store.project import Project

    path = tmp_path / "p.statcoder"
    Project.create(path).close()
    maps = ["--map", "code=ISCO 08 Code", "--map", "title=Title EN", "--map", "excludes=Excluded occupations",
            "--map", "notes=Notes"]
    check = _cli("classification", "import", "-p", str(path), str(isco_csv), *maps, "--check")
    assert check.returncode == 0, check.stderr
    assert "16 codes, 6 links from the excludes; nothing written" in check.stdout
    with Project.open(path) as project:
        assert project.summary()["codes"] == 0
    own = tmp_path / "own.csv"
    own.write_text("code,title,excludes\nA,Crops,\nA1,Grain,Rice growing [A2]\nA2,Rice,\n", encoding="utf-8")
    maps = ["--map", "code=code", "--map", "title=title", "--map", "excludes=excludes"]
    none = _cli("classification", "import", "-p", str(path), str(own), *maps, "--check")
    assert "0 links from the excludes (none found" in none.stdout and "--excludes-pattern" in none.stdout
    done = _cli("classification", "import", "-p", str(path), str(own), *maps, "--excludes-pattern", r"\[(\w+)\]")
    assert done.returncode == 0 and "1 links from the excludes" in done.stdout, done.stderr
