"""The main job end to end with the small test model: every stage runs and the best coder serves."""

from __future__ import annotations

from engine.coders.registry import default_model_id, get_model
from engine.llm.registry import test_model_path as gemma_model_path
from engine.pipeline import PipelineOptions, run_pipeline


def test_pipeline_runs_every_stage_and_resumes(tmp_path):
    lines: list[str] = []
    options = PipelineOptions(project=tmp_path / "p.statcoder", divisions=["11"], quota=2,
                              model=str(gemma_model_path()), threads=1)
    result = run_pipeline(options, log=lines.append)
    project = result.project
    codes = {c for (c,) in project.conn.execute("SELECT code FROM codes WHERE parent = '11.0'")}
    assert len(codes) == 7
    generated = project.conn.execute("SELECT COUNT(*), COUNT(DISTINCT code) FROM samples WHERE run_id = ?",
                                     (result.run_id,)).fetchone()
    assert generated[0] >= 7 and generated[1] >= 5
    assert set(result.models) == {"fasttext", "embedding", "knn", "lexical", "ensemble"}
    ensemble = get_model(project, result.models["ensemble"])   # the four as one, weighed on real validation
    assert ensemble.params["combination"] == "log" and ensemble.params["weights_from"] == "validation"
    assert ensemble.params["members"] == [result.models[k] for k in ("knn", "embedding", "fasttext", "lexical")]
    assert default_model_id(project) == result.serving and result.serving in result.models.values()
    for scores in result.scores.values():
        assert 0.0 <= scores["test_top1"] <= scores["test_top5"] <= 1.0
    assert result.report is not None and result.report.exists()
    assert project.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 5
    assert any("<- serves" in line for line in lines)
    # a second run reuses the finished generation instead of generating again
    again: list[str] = []
    rerun = run_pipeline(options, log=again.append)
    assert rerun.run_id == result.run_id
    assert any("already complete" in line for line in again)
    assert project.conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == generated[0]
