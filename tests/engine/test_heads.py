"""Title heads (engine.coders.heads): the activity a text names, matched to the codes whose titles lead with it,
and the 'log' ensemble that adds it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.classification import leaf_codes_under
from engine.coders.data import DataMix
from engine.coders.ensemble import EnsembleCoder
from engine.coders.heads import ZERO_REAL_BETA, TitleHeads, activity_titles, code_heads
from engine.coders.registry import load_coder
from engine.coders.train import train_coder
from engine.errors import ModelError, TrainingError
from tests.engine.test_offline import offline  # noqa: F401  (the network-guard fixture)

WHOLESALE = "Polyamides in primary forms (wholesale)"


def test_heads_are_the_first_title_words_on_a_codes_path_that_several_codes_share(nace_project):
    codes = leaf_codes_under(nace_project, ["20", "46", "47"])
    heads = code_heads(nace_project, codes)
    # 'C Manufacturing' and '20.16 Manufacture of plastics in primary forms'
    assert heads["20.16"] == ["manu"]
    # '46 Wholesale trade', '46.7 Other specialised wholesale', '46.75 Wholesale of chemical products'
    assert "whol" in heads["46.75"] and "manu" not in heads["46.75"]
    # '46.12 Agents involved in the sale of ...' under '46.1 Wholesale on a fee or contract basis'
    assert {"agen", "whol"} <= set(heads["46.12"])
    # 'G Wholesale and retail trade; ...' leads every code of the section with 'wholesale'
    assert heads["47.11"] == ["reta", "whol"] and "whol" not in heads["20.16"]
    # a head fewer than five codes share names a product, not an activity: 'Agents' leads only nine titles
    assert "agen" not in code_heads(nace_project, ["46.11", "46.12", "46.13", "46.14", "20.16"])["46.12"]


def test_the_term_moves_a_text_toward_the_codes_of_the_activity_it_names():
    heads = TitleHeads({"20.16": ["manu"], "46.75": ["whol"], "46.12": ["agen", "whol"]}, 20.0)
    codes = ["20.16", "46.12", "46.75"]
    term = heads.term([WHOLESALE, "Plastics (commission agent)", "Polyamides", "Wholesalers of plastics"], codes)
    assert term[0].tolist() == pytest.approx([0.0, np.log(21), np.log(21)])
    # 'agent' meets 'Agents' by its first four letters; the agents' code has the wholesale head too
    assert term[1].tolist() == pytest.approx([0.0, np.log(21), 0.0])
    assert not term[2].any()                                  # no activity named: nothing moves
    assert term[3].tolist() == pytest.approx(term[0].tolist())   # 'Wholesalers' ~ 'Wholesale'
    assert not TitleHeads(heads.heads, 0.0).term([WHOLESALE], codes).any()
    assert TitleHeads.from_json(json.loads(json.dumps(heads.to_json()))).term([WHOLESALE], codes).tolist() \
        == term[:1].tolist()
    with pytest.raises(ModelError):
        TitleHeads({}, -1.0)
    with pytest.raises(ModelError, match="title heads"):
        TitleHeads.from_json({"codes": {}})


def test_titles_lead_with_the_activity_in_nace_not_naics_unless_the_project_says(nace_project, project):
    assert activity_titles(nace_project)
    project.set_setting("classification", {"name": "NAICS 2017", "format": "naics"})
    assert not activity_titles(project)
    project.set_setting("classification", {"name": "ISIC Rev. 4", "format": "generic-csv", "activity_titles": True})
    assert activity_titles(project)
    nace_project.set_setting("classification", {**nace_project.get_setting("classification"),
                                                 "activity_titles": False})
    assert not activity_titles(nace_project)


def _mass(coder, text: str, prefix: str) -> float:
    return sum(p for c, p in coder.predict(text, len(coder.codes)) if c.startswith(prefix))


def test_a_zero_real_nace_ensemble_adds_the_heads_and_keeps_them_in_its_file(nace_project):
    codes = leaf_codes_under(nace_project, ["20", "46"])
    mix = DataMix(notes=1, codes=codes, validation_from="training")
    trained = train_coder(nace_project, mix, kind="ensemble", make_default=False)
    assert trained.params["title_heads"]["beta"] == ZERO_REAL_BETA
    assert trained.params["title_heads"]["from"] == "zero-real default"
    spec = json.loads(trained.path.read_text())
    assert spec["format"] == "statcoder-ensemble/2" and "whol" in spec["heads"]["codes"]["46.75"]
    coder, _ = load_coder(nace_project, trained.model_id)
    assert isinstance(coder, EnsembleCoder) and coder.heads is not None
    # the same members without the term: less of the text's mass goes to wholesale
    members = trained.params["members"]
    plain = train_coder(nace_project, mix, kind="ensemble", members=members, make_default=False, heads=0)
    assert plain.params["title_heads"] == {"beta": 0.0, "from": "off", "grid": []}
    without, _ = load_coder(nace_project, plain.model_id)
    assert without.heads is None and "heads" not in json.loads(plain.path.read_text())
    for text in (WHOLESALE, "Explosives (wholesale)", "Plastics in primary forms (commission agent)"):
        assert _mass(coder, text, "46.") > _mass(without, text, "46.") + 0.05, text
    # what the Code page says about it (engine.assist.coding.activities_named)
    from engine.assist.coding import activities_named

    assert activities_named(nace_project, WHOLESALE, model=trained.model_id) == ["Wholesale"]
    assert activities_named(nace_project, "Plastics (commission agent)", model=trained.model_id) == ["Agents"]
    assert activities_named(nace_project, WHOLESALE, model=plain.model_id) == []
    # a text that names no activity is ranked as without the term
    text = "nylon granules and pellets"
    assert not coder.heads.text_heads(text) and activities_named(nace_project, text, model=trained.model_id) == []
    assert [c for c, _ in coder.predict(text, 5)] == [c for c, _ in without.predict(text, 5)]
    # a file of the format before (no heads) still loads and serves
    old = trained.path.with_name("old-format.json")
    old.write_text(json.dumps({k: v for k, v in {**spec, "format": "statcoder-ensemble/1"}.items() if k != "heads"}))
    assert EnsembleCoder.load(old).heads is None
    with pytest.raises(TrainingError, match="mean"):
        train_coder(nace_project, mix, kind="ensemble", members=members[:2], combination="mean", heads=5.0,
                    make_default=False)
    with pytest.raises(TrainingError, match=">= 0"):
        train_coder(nace_project, mix, kind="ensemble", members=members, heads=-1.0, make_default=False)


def test_with_real_text_the_heads_weight_is_chosen_on_validation_and_off_where_titles_lead_with_products(
        nace_project):
    codes = leaf_codes_under(nace_project, ["20", "46"])
    real = train_coder(nace_project, DataMix(notes=1, real=1, codes=codes), kind="ensemble", make_default=False)
    grid = real.params["title_heads"]["grid"]
    assert real.params["title_heads"]["from"] == "validation" and [g["beta"] for g in grid] == [0, 3, 10, 20, 50]
    best = max(grid, key=lambda g: (g["top1"], -g["nll"]))
    assert real.params["title_heads"]["beta"] == best["beta"]
    nace_project.set_setting("classification", {**nace_project.get_setting("classification"),
                                                "activity_titles": False})
    off = train_coder(nace_project, DataMix(notes=1, real=1, codes=codes), kind="ensemble",
                      members=real.params["members"], make_default=False)
    assert off.params["title_heads"]["from"] == "off" and "heads" not in json.loads(off.path.read_text())


def test_coders_train_takes_the_heads_weight(nace_project, capsys):
    from engine.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["coders", "train", "-p", str(nace_project.path), "--real", "1", "--subset", "46", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    members = []
    for kind in ("lexical", "fasttext"):
        code, out, _ = run("--kind", kind, "--no-default", "--json", *(("--epoch", "5") if kind == "fasttext" else ()))
        assert code == 0
        members += ["--member", str(json.loads(out)["model_id"])]
    code, out, _ = run("--kind", "ensemble", *members, "--heads", "5", "--no-default", "--json")
    assert code == 0 and json.loads(out)["title_heads"]["beta"] == 5 and json.loads(out)["title_heads"]["from"] == "given"
    code, out, _ = run("--kind", "ensemble", *members, "--no-default")
    # by default chosen on the real validation texts: the grid is reported
    assert code == 0 and "title heads: " in out
    code, out, _ = run("--kind", "ensemble", *members, "--heads", "0", "--no-default", "--json")
    assert code == 0 and json.loads(out)["title_heads"] == {"beta": 0.0, "from": "off", "grid": []}
    code, _, err = run("--kind", "ensemble", *members, "--heads", "-1", "--no-default")
    assert code != 0 and "--heads" in err


def test_a_generic_import_says_whether_its_titles_lead_with_the_activity(tmp_path, capsys):
    from engine.cli import main
    from engine.store.project import Project

    source = tmp_path / "isic.csv"
    source.write_text("Code,Title,Parent\nG,Wholesale and retail trade,\n46,Wholesale trade,G\n"
                      "4610,Wholesale on a fee or contract basis,46\n4620,Wholesale of agricultural raw materials,46\n",
                      encoding="utf-8")
    mapping = ["--map", "code=Code", "--map", "title=Title", "--map", "parent=Parent"]
    for flag, expected in ((None, False), ("--activity-titles", True), ("--product-titles", False)):
        path = tmp_path / f"{flag or 'default'}.statcoder"
        assert main(["new", str(path)]) == 0
        assert main(["classification", "import", "-p", str(path), str(source), *mapping,
                     *([flag] if flag else [])]) == 0
        with Project.open(path) as project:
            assert activity_titles(project) is expected, flag
            assert ("activity_titles" in project.get_setting("classification")) is (flag is not None)
    path = tmp_path / "builtin.statcoder"
    assert main(["new", str(path)]) == 0
    assert main(["classification", "import", "-p", str(path), "--builtin", "nace2", "--product-titles"]) == 2
    assert "a built-in classification knows its titles" in capsys.readouterr().err
