"""Issue 12, High 1 and the output items: no output path can replace the project, its side files, its
models or the input; outputs are written whole (temp file + rename) or not at all; ordinary mistakes
(missing folder, full disk) are one clear line; user text is escaped or neutralised in every output."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest

from tests.engine.reliability_support import project_hashes, register_fake_model, run_cli


@pytest.fixture
def fake_project(nace_project, monkeypatch, tmp_path):
    """A NACE project with a fake model, closed (so the file is quiescent), and a small input CSV."""
    register_fake_model(nace_project, monkeypatch)
    nace_project.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = nace_project.path
    nace_project.close()
    src = tmp_path / "in.csv"
    src.write_text("text,id\nsure bakery,1\nsomething else,2\n", encoding="utf-8")
    return path, src


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith((".part", ".tmp"))]


def _protected_targets(project_path: Path) -> list[Path]:
    models = project_path.parent / f"{project_path.stem}.models"
    return [project_path, project_path.with_name(project_path.name + "-wal"),
            project_path.with_name(project_path.name + "-shm"), models / "fake.json", models / "new.csv"]


def test_code_batch_refuses_the_project_its_side_files_its_models_and_the_input(fake_project, capsys):
    path, src = fake_project
    before = project_hashes(path)
    model_before = (path.parent / f"{path.stem}.models" / "fake.json").read_bytes()
    for target in _protected_targets(path) + [src]:
        code, _, err = run_cli(capsys, "code", "batch", "-p", path, src, target, "--text-column", "text")
        assert code == 1 and "refusing to write" in err and "Traceback" not in err, (target, err)
    assert project_hashes(path)[""] == before[""]
    assert (path.parent / f"{path.stem}.models" / "fake.json").read_bytes() == model_before
    assert src.read_text(encoding="utf-8").startswith("text,id\n")


def test_curate_export_and_quality_out_refuse_the_project(fake_project, capsys):
    path, _ = fake_project
    before = project_hashes(path)[""]
    for target in _protected_targets(path):
        for args in (("curate", "export", "-p", path, target, "--format", "csv"),
                     ("curate", "export", "-p", path, target, "--format", "fasttext"),
                     ("quality", "-p", path, "--out", target)):
            code, _, err = run_cli(capsys, *args)
            assert code == 1 and "refusing to write" in err, (args, err)
    assert project_hashes(path)[""] == before


def test_evaluate_report_refuses_the_models_folder(fake_project, capsys):
    path, _ = fake_project
    models = path.parent / f"{path.stem}.models"
    code, _, err = run_cli(capsys, "evaluate", "-p", path, "--report", models)
    assert code == 1 and "refusing to write" in err
    before = project_hashes(path)[""]
    code, _, err = run_cli(capsys, "evaluate", "-p", path, "--report", path)
    assert code != 0 and project_hashes(path)[""] == before
    assert sorted(p.name for p in models.iterdir()) == ["fake.json"]


class _FullDisk:
    """A file whose every write fails as on a full disk."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Every output file statcoder opens (through engine.atomic) fails to write with ENOSPC."""
    import engine.atomic

    monkeypatch.setattr(engine.atomic, "open", lambda *a, **k: _FullDisk(open(*a, **k)), raising=False)


def _add_samples(path: Path, texts: list[str]) -> None:
    from engine.store.project import Project

    with Project.open(path) as project:
        run = project.conn.execute(
            "INSERT INTO generation_runs (name, strategies, codes, quota, seed, params) "
            "VALUES ('r', '[]', '[]', 1, 0, '{}')").lastrowid
        for text in texts:
            project.conn.execute(
                "INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version, prompt_hash,"
                " seed, model_sha256, backend, params) VALUES (?, '10.71', ?, ?, 's', 'u', 'v', 'h', 0, 'x', 'b', '{}')",
                (run, text, text.lower()))


def test_a_full_disk_leaves_the_old_output_whole_and_says_so(fake_project, capsys, full_disk, tmp_path):
    path, src = fake_project
    _add_samples(path, ["bread", "cakes"])
    outputs = {"out.csv": ("code", "batch", "-p", path, src, tmp_path / "out.csv", "--text-column", "text"),
               "export.csv": ("curate", "export", "-p", path, tmp_path / "export.csv"),
               "export.txt": ("curate", "export", "-p", path, tmp_path / "export.txt"),
               "q.md": ("quality", "-p", path, "--out", tmp_path / "q.md", "--json")}
    for name, args in outputs.items():
        (tmp_path / name).write_text("old output\n")
        code, _, err = run_cli(capsys, *args)
        assert code == 1 and "the disk is full" in err and name in err, (name, err)
        assert (tmp_path / name).read_text() == "old output\n" and _no_temp_files(tmp_path), name


def test_missing_output_folder_is_one_clear_line(fake_project, capsys, tmp_path):
    path, src = fake_project
    missing = tmp_path / "no" / "such" / "folder"
    for args in (("code", "batch", "-p", path, src, missing / "o.csv", "--text-column", "text"),
                 ("curate", "export", "-p", path, missing / "o.csv"),
                 ("quality", "-p", path, "--out", missing / "q.md")):
        code, _, err = run_cli(capsys, *args)
        assert code == 1 and "does not exist" in err and "Traceback" not in err, (args, err)



def test_curate_export_neutralises_spreadsheet_formulas(fake_project, capsys, tmp_path):
    path, _ = fake_project
    _add_samples(path, ['=HYPERLINK("http://x","y")', "@SUM(A1)", "bread"])
    out = tmp_path / "export.csv"
    code, _, err = run_cli(capsys, "curate", "export", "-p", path, out)
    assert code == 0, err
    with open(out, newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    assert texts == ['\'=HYPERLINK("http://x","y")', "'@SUM(A1)", "bread"]
