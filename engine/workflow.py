"""Where a project stands in the workflow, step by step: what is done, the numbers, and what to do next.

The Project page shows it as a checklist for a first-time user (classification, real texts, generation
model, generation, review, coder, evaluation); `next_step` is the first step not done. Read-only: short
counting queries, safe on the GUI thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.coders.registry import default_model_id
from engine.curate import uncurated_samples
from engine.store.project import Project

# Project settings key of the generation backend (the Models page writes it).
LLM_SETTING = "llm_backend"


@dataclass(frozen=True)
class WorkflowStep:
    key: str            # classification | realdata | llm | generation | review | coder | evaluation
    title: str
    page: str           # the page of the main window where the step is done
    done: bool
    detail: str         # the numbers, or what the step is for when nothing is done yet
    action: str         # the next-step button's text
    optional: bool = False


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _llm_step(project: Project) -> WorkflowStep:
    stored = project.get_setting(LLM_SETTING) or {}
    title, action = "Generation model (LLM)", "Add a generation model"
    if stored.get("kind") == "openai":
        return WorkflowStep("llm", title, "models", True, f"a server at {stored.get('base_url')}", action)
    try:
        from engine.llm.registry import get_default_model

        model = get_default_model()
    except Exception:  # noqa: BLE001 - an unreadable registry is shown as "no model", never a crash here
        model = None
    if model is None:
        return WorkflowStep("llm", title, "models", False,
                            "a local GGUF model writes the synthetic training texts", action)
    size = f", {model.parameter_count / 1e6:,.0f} M parameters" if getattr(model, "parameter_count", 0) else ""
    return WorkflowStep("llm", title, "models", True, f"{model.name}{size}", action)


def workflow_steps(project: Project) -> list[WorkflowStep]:
    """Every step, in workflow order."""
    s = project.summary()
    conn = project.conn
    steps: list[WorkflowStep] = []
    name = (s["classification"] or {}).get("name", "")
    steps.append(WorkflowStep(
        "classification", "Classification", "classification", s["codes"] > 0,
        f"{name}: {_plural(s['codes'], 'code')}, {_plural(s['leaf_codes'], 'leaf code')}, "
        f"{_plural(s['links'], 'excludes link')}" if s["codes"]
        else "the codes with their titles and explanatory notes", "Import a classification"))
    real = s["real_train"] + s["real_test"]
    steps.append(WorkflowStep(
        "realdata", "Real coded texts", "classification", real > 0,
        f"{_plural(real, 'text')}: {s['real_train']:,} to train, {s['real_test']:,} to test" if real
        else "texts coded by people: to test the coder (and to train it, if you have enough)",
        "Import coded texts", optional=True))
    steps.append(_llm_step(project))
    statuses = dict(conn.execute("SELECT status, COUNT(*) FROM generation_runs GROUP BY status").fetchall())
    runs = sum(statuses.values())
    open_runs = {k: v for k, v in statuses.items() if k not in ("done",)}
    steps.append(WorkflowStep(
        "generation", "Generation", "generate", s["samples"] > 0,
        f"{_plural(s['samples'], 'synthetic sample')} from {_plural(runs, 'run')}"
        + (" (" + ", ".join(f"{v} {k}" for k, v in sorted(open_runs.items())) + ")" if open_runs else "")
        if s["samples"] else "the model writes training texts for every code", "Generate samples"))
    uncurated = uncurated_samples(project) if s["samples"] else 0
    rejected = s["samples"] - s["accepted_samples"]
    steps.append(WorkflowStep(
        "review", "Review and curation", "review", s["samples"] > 0 and uncurated == 0,
        (f"{s['accepted_samples']:,} accepted, {rejected:,} rejected"
         + (f"; {_plural(uncurated, 'sample')} never curated" if uncurated else "; all curated"))
        if s["samples"] else "curation flags and rejects the junk among the samples", "Run curation"))
    coder = default_model_id(project) if s["models"] else None
    coder_name = ""
    if coder is not None:
        row = conn.execute("SELECT name, kind FROM models WHERE id = ?", (coder,)).fetchone()
        coder_name = f"#{coder} {row[0] or row[1]}" if row else f"#{coder}"
    steps.append(WorkflowStep(
        "coder", "Coder", "train", s["models"] > 0,
        f"{_plural(s['models'], 'coder')}; coding uses {coder_name}" if s["models"]
        else "a classifier trained on the notes, samples and real texts", "Train a coder"))
    evaluation = None
    if coder is not None:
        evaluation = conn.execute("SELECT metrics FROM evaluations WHERE model_id = ? ORDER BY id DESC LIMIT 1",
                                  (coder,)).fetchone()
    if evaluation is not None:
        metrics = json.loads(evaluation[0])
        top1, n = metrics.get("top1"), metrics.get("n")
        detail = (f"{coder_name}: top-1 {top1:.1%} on {n:,} test texts" if top1 is not None and n
                  else f"{coder_name} evaluated")
    else:
        detail = ("the coder in use has not been evaluated" if coder is not None
                  else "top-1, top-5 and the auto-coding curve on the real test texts")
    steps.append(WorkflowStep("evaluation", "Evaluation", "train", evaluation is not None, detail,
                              "Evaluate the coder"))
    return steps


def next_step(steps: list[WorkflowStep]) -> WorkflowStep | None:
    """The first step not done (optional steps included: they are worth doing); None when all are."""
    return next((step for step in steps if not step.done), None)
