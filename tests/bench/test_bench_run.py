"""The benchmark command: arms, result files in BENCHMARK.md's format, synthetic arms read a stored run."""

from __future__ import annotations

import json

import pytest

import bench.common
import bench.run
from engine.classification import leaf_codes_under


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    return tmp_path / "results"


def _add_run(project, codes):
    with project.transaction() as conn:
        conn.execute("INSERT INTO generation_runs (id, name, model_name, model_sha256, strategies, codes, quota, seed,"
                     " params, created, finished) VALUES (7, 'g', 'tiny', 'abc', '[]', '[]', 2, 0, '{}',"
                     " '2026-01-01T10:00:00Z', '2026-01-01T10:05:30Z')")
        conn.executemany("INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version,"
                         " prompt_hash, seed, model_sha256, backend, params, status) VALUES (7, ?, ?, ?, 's', 'u', 'v',"
                         " 'h', 0, 'abc', 'b', '{}', ?)",
                         [(c, f"{c} made here {s}", f"{c} made here {s}", s) for c in codes for s in ("accepted", "rejected")])


def test_bench_run_writes_json_and_markdown(nace_project, results_dir):
    codes = leaf_codes_under(nace_project, ["11"])
    _add_run(nace_project, codes)
    path = str(nace_project.path)
    assert bench.run.main(["--benchmark", "nace-uksic", "--subset", "11", "--arms", "notes,zero-real",
                           "--project", path, "--run-id", "7", "--name", "t"]) == 0
    data = json.loads((results_dir / "t.json").read_text())
    assert data["benchmark"] == "nace-uksic" and data["subset"] == ["11"] and "--run-id 7" in data["command"]
    notes, zero = data["arms"]["notes"], data["arms"]["zero-real"]
    n_test = nace_project.conn.execute(
        f"SELECT COUNT(*) FROM real_texts WHERE split = 'test' AND code IN ({','.join('?' * len(codes))})",
        codes).fetchone()[0]
    for arm in (notes, zero):
        assert 0 <= arm["top1"] <= arm["top5"] <= 1 and arm["n_test"] == n_test
        assert set(arm["per_level"]) == {"section", "division", "group", "class"}
        assert len(arm["model_sha256"]) == 64
    assert zero["n_train"] == notes["n_train"] + len(codes)        # only the accepted samples join
    assert zero["generation_s"] == 330 and zero["samples_used"] == len(codes)
    assert data["model"] == {"name": "tiny", "sha256": "abc"}
    md = (results_dir / "t.md").read_text()
    assert "| notes | fasttext |" in md and "| zero-real | fasttext |" in md
    # a later run merges its arms into the same file
    assert bench.run.main(["--benchmark", "nace-uksic", "--subset", "11", "--arms", "real", "--project", path,
                           "--name", "t"]) == 0
    merged = json.loads((results_dir / "t.json").read_text())
    assert set(merged["arms"]) == {"notes", "zero-real", "real"} and len(merged["commands"]) == 2


def test_synthetic_arms_need_a_run(nace_project, results_dir):
    with pytest.raises(SystemExit):
        bench.run.main(["--benchmark", "nace-uksic", "--subset", "11", "--arms", "zero-real",
                        "--project", str(nace_project.path)])


def test_several_generation_runs_feed_one_arm(nace_project):
    codes = leaf_codes_under(nace_project, ["11"])
    _add_run(nace_project, codes)
    with nace_project.transaction() as conn:
        conn.execute("INSERT INTO generation_runs (id, name, model_name, model_sha256, strategies, codes, quota, seed,"
                     " params) VALUES (8, 'h', 'tiny', 'abc', '[]', '[]', 2, 0, '{}')")
        conn.execute("INSERT INTO generation_units (run_id, unit, code, strategy, accepted, parsed, parse_ok, seconds)"
                     " VALUES (8, 'u1', ?, 's', 1, 1, 1, 12.5)", (codes[0],))
    assert bench.run._run_ids("7,8") == [7, 8]
    info = bench.run.generation_info(nace_project, [7, 8])
    assert info["run_ids"] == [7, 8] and info["samples_generated"] == 2 * len(codes)
    assert info["generation_s"] == 330.0 + 12.5   # run 7 from its timestamps, run 8 from its requests
    mix = bench.run.arm_mix("zero-real", codes, [7, 8])
    assert mix.run_ids == [7, 8] and mix.synthetic == 1 and mix.real == 0


def test_judge_verdicts_travel_between_work_projects_through_the_committed_file(tmp_path):
    """A judged bench stopped on one machine goes on from its saved verdicts on the next."""
    from engine.store.project import Project

    path = tmp_path / "verdicts.jsonl.gz"
    with Project.create(tmp_path / "empty.statcoder") as empty:
        assert bench.common.load_verdicts(empty, path) == 0          # no file yet
    verdict = {"codes": ["10.71", "10.72"], "probs": [0.7, 0.3], "raw": [[0.7, 0.3]], "orders": [[0, 1]]}
    with Project.create(tmp_path / "first.statcoder") as first:
        with first.transaction() as conn:
            conn.executemany("INSERT INTO judge_verdicts (key, judge_model_sha256, verdict) VALUES (?, 'sha', ?)",
                             [(key, json.dumps(verdict)) for key in ("b", "a")])
        assert bench.common.save_verdicts(first, path) == 2
        saved = path.read_bytes()
        assert bench.common.save_verdicts(first, path) == 2 and path.read_bytes() == saved   # the same bytes
        assert not path.with_name(path.name + ".part").exists()
    with Project.create(tmp_path / "second.statcoder") as second:
        assert bench.common.load_verdicts(second, path) == 2
        rows = second.conn.execute("SELECT key, judge_model_sha256, verdict FROM judge_verdicts ORDER BY key").fetchall()
        assert [(k, s, json.loads(v)) for k, s, v in rows] == [("a", "sha", verdict), ("b", "sha", verdict)]
        assert bench.common.load_verdicts(second, path) == 2          # loading again adds nothing twice
        assert second.conn.execute("SELECT COUNT(*) FROM judge_verdicts").fetchone()[0] == 2
