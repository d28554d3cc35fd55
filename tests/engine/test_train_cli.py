"""The train, evaluate and code commands end to end through the CLI entry point."""

from __future__ import annotations

import csv
import json

from engine.cli import main


def test_train_evaluate_and_code_from_the_cli(nace_project, tmp_path, capsys):
    path = str(nace_project.path)
    assert main(["train", "run", "-p", path, "--real", "1", "--subset", "11", "--bucket", "20000", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model_id"] == 1 and trained["validation"]["n"] > 0
    assert main(["train", "list", "-p", path]) == 0
    assert capsys.readouterr().out.startswith("*    1  fasttext")
    report = tmp_path / "report"
    assert main(["evaluate", "-p", path, "--subset", "11", "--report", str(report), "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["n"] > 20 and 0 < evaluation["top1"] <= evaluation["top5"] <= 1
    assert (report / "index.html").exists()
    stored = nace_project.conn.execute("SELECT report_path FROM evaluations WHERE id = ?",
                                       (evaluation["evaluation_id"],)).fetchone()[0]
    assert stored == str(report / "index.html")
    assert main(["code", "suggest", "-p", path, "brewing beer", "-k", "3", "--json"]) == 0
    suggestions = json.loads(capsys.readouterr().out)
    assert len(suggestions) == 3 and all(s["code"].startswith("11.0") for s in suggestions)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("text\nbrewing beer\nmineral water bottling\n", encoding="utf-8")
    assert main(["code", "batch", "-p", path, str(src), str(out), "--text-column", "text", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2
    assert [r["status"] in ("auto", "review") for r in csv.DictReader(out.open())] == [True, True]
    assert main(["code", "decide", "-p", path, "home brewing kit maker", "11.05", "--suggested", "11.05"]) == 0
    assert "confirmation" in capsys.readouterr().out
    assert main(["evaluate", "-p", path, "--model", "99"]) == 1
