"""ProGen and SynthesizRR as generation strategies: examples chosen before the run, stored with it, shown in
prompts; retrieval never shows a test-split text and never a code."""

from __future__ import annotations

import json

import pytest

from engine.coders.embedding.retrieval import retrieval_pool, style_examples
from engine.curate.feedback import helpful_samples
from engine.errors import StatcoderError
from engine.generate import GenerationParams, create_run, run_generation
from engine.text import normalise_key
from tests.engine.llm_support import SCRIPTED, ScriptedBackend
from tests.engine.test_curate import add_run


def _add_real(project, rows):
    """Only these real texts (the template's UK SIC index would make retrieval slow to embed)."""
    with project.transaction() as conn:
        conn.execute("DELETE FROM real_texts")
        conn.executemany("INSERT INTO real_texts (text, text_key, code, split, source) VALUES (?, ?, ?, ?, 'test')",
                         [(t, normalise_key(t), c, s) for t, c, s in rows])


def _columns(project, table):
    return [r[1] for r in project.conn.execute(f"PRAGMA table_info({table})")]


def test_retrieval_pool_and_examples_never_include_test_texts(project_with_texts):
    project = project_with_texts
    pool = retrieval_pool(project)
    assert "white sliced bread bakery TEST" not in pool and "craft bakery for bread" in pool
    assert "sourdough bread uncoded" in pool
    assert retrieval_pool(project, ["uncoded"]) == ["sourdough bread uncoded"]
    examples = style_examples(project, codes=["10.71", "11.05"], top=3)
    assert all("TEST" not in t for texts in examples.values() for t in texts)
    assert "bread" in examples["10.71"][0] and "beer" in examples["11.05"][0]
    with pytest.raises(StatcoderError, match="unknown retrieval source"):
        retrieval_pool(project, ["test"])


@pytest.fixture
def project_with_texts(nace_project):
    _add_real(nace_project, [("craft bakery for bread", "10.71", "train"), ("beer brewery", "11.05", "train"),
                             ("white sliced bread bakery TEST", "10.71", "test"), ("brewing beer TEST", "11.05", "test"),
                             ("car repair garage", "45.20", "train")])
    assert "text_key" in _columns(nace_project, "uncoded_texts")
    with nace_project.transaction() as conn:
        conn.execute("INSERT INTO uncoded_texts (text, text_key) VALUES (?, ?)",
                     ("sourdough bread uncoded", normalise_key("sourdough bread uncoded")))
    return nace_project


def test_retrieved_strategy_shows_style_examples_without_codes_and_stores_them(project_with_texts):
    project = project_with_texts
    examples = style_examples(project, codes=["10.71"], top=3)
    params = GenerationParams(per_request=3, examples={"retrieved": examples}, examples_k=2)
    run_id = create_run(project, codes=["10.71"], quota=3, seed=1, backend=SCRIPTED, strategies=["retrieved"],
                        params=params)
    backend = ScriptedBackend()
    run_generation(project, run_id, backend=backend)
    task = backend.requests[0].prompt.task
    shown = [t for t in examples["10.71"] if t in task]
    assert len(shown) == 2 and "codes are unknown" in task and "10.71" not in task and "TEST" not in task
    strategy, condition, version = project.conn.execute(
        "SELECT strategy, condition, prompt_version FROM samples WHERE run_id = ?", (run_id,)).fetchone()
    assert strategy == "retrieved" and version.endswith("retrieved-1")
    assert sorted(json.loads(condition)["style_examples"]) == sorted(shown)
    stored = json.loads(project.conn.execute("SELECT params FROM generation_runs WHERE id = ?", (run_id,)).fetchone()[0])
    assert stored["generation"]["examples"]["retrieved"] == examples


def test_progen_shows_the_round_one_samples_a_notes_coder_finds_most_typical(nace_project):
    run1, _ = add_run(nace_project, [("10.71", "bread and rolls bakery"), ("10.71", "car repair garage"),
                                     ("10.71", "fresh pastry and cakes"), ("11.05", "beer brewing"),
                                     ("11.05", "office cleaning")])
    ranked = helpful_samples(nace_project, run_ids=[run1], codes=["10.71", "11.05"], top=3)
    # The notes coder is fastText on 2 threads, not deterministic: assert the clear cases only
    # (an on-topic sample leads; the off-topic one is never the most typical).
    assert len(ranked["10.71"]) == 3 and ranked["10.71"][0] != "car repair garage"
    assert ranked["11.05"][0] == "beer brewing"
    helpful = {code: texts[:2] for code, texts in ranked.items()}
    params = GenerationParams(per_request=3, examples={"progen": helpful}, examples_k=2)
    run2 = create_run(nace_project, codes=["10.71", "11.05"], quota=3, seed=2, backend=SCRIPTED,
                      strategies=["progen"], params=params)
    backend = ScriptedBackend()
    run_generation(nace_project, run2, backend=backend)
    assert any(helpful["10.71"][0] in r.prompt.task and "written earlier" in r.prompt.task
               for r in backend.requests)
    assert {r[0] for r in nace_project.conn.execute("SELECT strategy FROM samples WHERE run_id = ?", (run2,))} == {"progen"}


def test_example_strategies_without_examples_are_refused(nace_project):
    with pytest.raises(StatcoderError, match="'progen' strategy needs examples"):
        create_run(nace_project, codes=["10.71"], quota=3, backend=SCRIPTED, strategies=["progen"])
    with pytest.raises(StatcoderError, match="ProGen needs a first round"):
        helpful_samples(nace_project, run_ids=[99], codes=["10.71"])


def test_cli_create_chooses_and_stores_examples(capsys, project_with_texts):
    from engine.cli import main
    from engine.store.project import Project

    run1, _ = add_run(project_with_texts, [("10.71", "bread and rolls bakery"), ("10.71", "pastry")])
    path = str(project_with_texts.path)
    project_with_texts.close()
    assert main(["generate", "create", "-p", path, "--code", "10.71", "--quota", "4", "--backend", "openai",
                 "--base-url", "http://127.0.0.1:9", "--progen-from", str(run1), "--retrieve-from", "train",
                 "--examples-pool", "2", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    with Project.open(path) as project:
        row = project.conn.execute("SELECT strategies, params FROM generation_runs WHERE id = ?", (run_id,)).fetchone()
    assert json.loads(row[0]) == ["progen", "retrieved"]
    examples = json.loads(row[1])["generation"]["examples"]
    assert len(examples["progen"]["10.71"]) == 2 and "craft bakery for bread" in examples["retrieved"]["10.71"]
