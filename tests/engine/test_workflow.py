"""Where a project stands in the workflow: each step done or not, with its numbers, and the next step."""

from __future__ import annotations

from engine.curate.settings import CurationSettings, run_curation
from engine.generate import GenerationParams, create_run, run_generation
from engine.workflow import next_step, workflow_steps
from tests.engine.llm_support import SCRIPTED, ScriptedBackend


def _done(project):
    return {step.key: step.done for step in workflow_steps(project)}


def test_an_empty_project_starts_with_the_classification(project):
    steps = workflow_steps(project)
    assert [s.key for s in steps] == ["classification", "realdata", "llm", "generation", "review", "coder",
                                      "evaluation"]
    assert not any(s.done for s in steps)
    assert next_step(steps).key == "classification" and next_step(steps).page == "classification"


def test_the_steps_follow_the_work_with_their_numbers(nace_project):
    steps = {s.key: s for s in workflow_steps(nace_project)}
    assert steps["classification"].done and "996 codes, 615 leaf codes" in steps["classification"].detail
    assert steps["realdata"].done and "15,957 texts" in steps["realdata"].detail
    assert next_step(list(steps.values())).key == "llm"          # no generation model registered yet
    nace_project.set_setting("llm_backend", {"kind": "openai", "base_url": "http://localhost:8080/v1"})
    assert next_step(workflow_steps(nace_project)).key == "generation"

    run_id = create_run(nace_project, codes=["10.71"], quota=6, seed=1, backend=SCRIPTED, strategies=["notes"],
                        params=GenerationParams(per_request=3))
    run_generation(nace_project, run_id, backend=ScriptedBackend())
    steps = {s.key: s for s in workflow_steps(nace_project)}
    assert steps["generation"].done and steps["generation"].detail == "6 synthetic samples from 1 run"
    assert not steps["review"].done and "6 samples never curated" in steps["review"].detail
    assert next_step(list(steps.values())).key == "review"
    run_curation(nace_project, CurationSettings(label_check=False))
    steps = {s.key: s for s in workflow_steps(nace_project)}
    assert steps["review"].done and "all curated" in steps["review"].detail
    assert next_step(list(steps.values())).key == "coder"
