"""The curation, augmentation and quality commands, end to end on a project file."""

from __future__ import annotations

import csv
import json

from engine.cli import main
from tests.engine.test_curate import add_run


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_of_every_command(capsys):
    for command in (["curate", "--help"], ["curate", "run", "--help"], ["curate", "flags", "--help"],
                    ["curate", "set", "--help"], ["curate", "override", "--help"], ["curate", "balance", "--help"],
                    ["curate", "export", "--help"], ["augment", "--help"], ["quality", "--help"]):
        assert main(command) == 0
        assert "Usage:" in capsys.readouterr().out


def test_curate_flags_review_export_and_quality(capsys, nace_project, tmp_path):
    path = str(nace_project.path)
    run_id, ids = add_run(nace_project, [("10.71", "manufacture of dry bakery products"), ("10.71", "bakery shop"),
                                         ("10.71", "bakery shops"), ("10.71", "wedding cakes"), ("10.72", "rusks")],
                          quota=3)
    nace_project.close()
    code, out, _ = run(capsys, "curate", "run", "-p", path, "--run", str(run_id), "--no-label-check")
    assert code == 0 and "5 samples from runs 1: 4 accepted (1 of them relabelled), 1 rejected" in out
    assert "2 codes under the quota of 3: 10.71 (+1), 10.72 (+1)" in out  # the relabelled one counts for 10.72
    code, out, _ = run(capsys, "curate", "run", "-p", path, "--run", str(run_id), "--no-label-check",
                       "--relabel", "none")
    assert code == 0 and "5 samples from runs 1: 3 accepted (0 of them relabelled), 2 rejected" in out
    assert "excludes_conflict" in out and "2 codes under the quota of 3: 10.71 (+1), 10.72 (+2)" in out
    code, out, _ = run(capsys, "curate", "flags", "-p", path, "--json")
    data = json.loads(out)
    assert data["flags"]["near_duplicate"] == {"flagged": 1, "overridden": 0, "rejected": 1}
    assert data["statuses"] == {"accepted/default": 3, "rejected/rule": 2}
    code, out, _ = run(capsys, "curate", "flags", "-p", path, "--list", "excludes_conflict")
    flag_id = int(out.split()[1])
    assert "-> 10.72" in out and f"sample {ids[0]}" in out
    code, out, _ = run(capsys, "curate", "override", "-p", path, str(flag_id))
    assert code == 0 and "1 samples changed status" in out
    code, out, _ = run(capsys, "curate", "set", "-p", path, "rejected", str(ids[3]))
    assert code == 0 and "1 samples changed" in out
    code, out, _ = run(capsys, "curate", "balance", "-p", path)
    assert "10.71 (+1)" in out
    code, out, _ = run(capsys, "curate", "export", "-p", path, str(tmp_path / "curated.txt"))
    assert code == 0 and "wrote 3 samples" in out
    assert (tmp_path / "curated.txt").read_text(encoding="utf-8").splitlines() == [
        "__label__10.71 manufacture of dry bakery products", "__label__10.71 bakery shop", "__label__10.72 rusks"]
    code, out, _ = run(capsys, "curate", "export", "-p", path, str(tmp_path / "all.csv"), "--include-rejected")
    rows = list(csv.DictReader(open(tmp_path / "all.csv", encoding="utf-8")))
    assert code == 0 and len(rows) == 5 and rows[3]["status_by"] == "user"
    code, out, _ = run(capsys, "quality", "-p", path, "--out", str(tmp_path / "quality.md"))
    assert code == 0 and "## Per code" in out and "| 10.72 | 1 | 1 |" in (tmp_path / "quality.md").read_text()
    code, out, _ = run(capsys, "augment", "-p", path, "--codes", "10.71,10.72", "--seed", "3", "--json")
    assert code == 0 and json.loads(out)["created"] > 0
    code, _, err = run(capsys, "curate", "run", "-p", path, "--run", "99")
    assert code == 1 and "no generation run 99" in err


def test_embedding_label_check_judged_by_the_notes_alone(capsys, nace_project):
    """The BENCHMARK.md curation: a notes-trained embedding classifier flags samples it does not rank top 3."""
    path = str(nace_project.path)
    run_id, ids = add_run(nace_project, [("11.01", "whisky distillery"), ("11.02", "winery"),
                                         ("11.05", "spring water bottling plant"), ("11.03", "cider maker"),
                                         ("11.05", "craft beer brewery"), ("11.06", "malting of barley"),
                                         ("11.07", "soft drinks factory")], quota=1)
    nace_project.close()
    code, out, _ = run(capsys, "curate", "run", "-p", path, "--run", str(run_id), "--checker", "embedding",
                       "--check-mode", "notes", "--no-real-train", "--top-k", "1", "--json")
    assert code == 0
    result = json.loads(out)
    assert 1 <= result["flags"].get("label_check", 0) <= 2
    code, out, _ = run(capsys, "curate", "flags", "-p", path, "--list", "label_check")
    assert f"sample {ids[2]}" in out and "-> 11.07" in out
