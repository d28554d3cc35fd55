"""Generation runs with real inference on the Gemma 3 270M test model: provenance, contrastive labels,
the same seed giving the same samples, and a run killed with SIGKILL resuming to the exact quota."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.classification import links_to
from engine.errors import ModelError
from engine.generate import GenerationParams, create_run, run_generation, run_status
from engine.llm.registry import add_model
from engine.store.project import Project
from tests.conftest import REPO
from tests.engine.llm_support import gemma_path, gemma_settings  # noqa: F401

pytestmark = pytest.mark.slow

GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PARAMS = GenerationParams(per_request=3, max_words=6)


def _samples(project, run_id):
    return project.conn.execute(
        "SELECT code, strategy, text, unit, condition, seed, model_sha256, backend, prompt_version, prompt_hash,"
        " prompt_tokens, completion_tokens, logprob FROM samples WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()


def test_every_sample_has_a_valid_code_and_full_provenance(nace_project, gemma_path):
    run_id = create_run(nace_project, codes=["10.89", "11.05"], quota=4, seed=1, model=str(gemma_path),
                        backend=gemma_settings(gemma_path), strategies=["contrastive", "notes"], params=PARAMS)
    result = run_generation(nace_project, run_id)
    assert run_status(nace_project, run_id).per_code == {"10.89": 4, "11.05": 4}
    assert result.device == "cpu" and result.completion_tokens > 0 and result.cached_tokens > 0
    codes = {r[0] for r in nace_project.conn.execute("SELECT code FROM codes WHERE is_leaf")}
    rows = _samples(nace_project, run_id)
    assert len(rows) == 8
    for code, strategy, text, unit, condition, seed, sha, backend, version, phash, ptok, ctok, logprob in rows:
        assert code in codes and unit.startswith(f"{code}|{strategy}|")
        assert text.strip() and len(text.split()) <= 10
        assert json.loads(condition) and seed > 0 and sha == GEMMA_SHA and backend == "llama-cpp (cpu)"
        assert version.startswith("sys-") and len(phash) == 16 and ptok > 50 and ctok > 0 and logprob < 0


def test_contrastive_samples_carry_the_excluded_to_code(nace_project, gemma_path):
    run_id = create_run(nace_project, codes=["10.89"], quota=3, seed=4, model=str(gemma_path),
                        backend=gemma_settings(gemma_path), strategies=["contrastive"], params=PARAMS)
    run_generation(nace_project, run_id)
    links = {(l.code, l.text) for l in links_to(nace_project, "10.89")}
    rows = _samples(nace_project, run_id)
    assert len(rows) == 3
    for code, strategy, *_rest in rows:
        assert (code, strategy) == ("10.89", "contrastive")
    for row in rows:
        condition = json.loads(row[4])
        assert (condition["excluded_from"], condition["item"]) in links


def test_a_run_whose_model_file_moved_resumes_with_the_registered_file_of_the_same_sha256(nace_project,
                                                                                        gemma_path, tmp_path):
    # A project carried to another workstation (or a model file moved) stores a path that is gone: the
    # run must find its model by sha256 in the registry, and say what to do when none is registered.
    old = tmp_path / "old-place" / "gemma.gguf"
    old.parent.mkdir()
    shutil.copy(gemma_path, old)
    run_id = create_run(nace_project, codes=["10.89"], quota=2, seed=3, model=str(old),
                        backend=gemma_settings(old), strategies=["notes"], params=PARAMS)
    old.unlink()
    with pytest.raises(ModelError, match=r"sha256 a5fd3b62230a.*gone.*statcoder models add"):
        run_generation(nace_project, run_id)
    assert run_status(nace_project, run_id).per_code == {"10.89": 0}
    add_model(gemma_path)
    run_generation(nace_project, run_id)
    assert run_status(nace_project, run_id).per_code == {"10.89": 2}
    assert {row[6] for row in _samples(nace_project, run_id)} == {GEMMA_SHA}


def test_kill_9_mid_run_resumes_to_the_exact_quota_and_matches_an_unbroken_run(nace_project, gemma_path,
                                                                               tmp_path):
    definition = dict(codes=["10.71", "11.02"], quota=6, seed=9, model=str(gemma_path),
                      backend=gemma_settings(gemma_path), strategies=["keywords", "notes"], params=PARAMS)
    twin_path = tmp_path / "twin.statcoder"
    shutil.copy(nace_project.path, twin_path)
    run_id = create_run(nace_project, **definition)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "engine", "generate", "run", "-p", str(nace_project.path),
                              str(run_id), "--quiet"], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = nace_project.conn.execute("SELECT COUNT(*) FROM generation_units WHERE run_id = ?",
                                             (run_id,)).fetchone()[0]
            if done >= 2 or child.poll() is not None:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    before = run_status(nace_project, run_id)
    assert before.status == "interrupted" and 0 < before.done < 12   # its runner is dead, not running
    run_generation(nace_project, run_id)
    after = run_status(nace_project, run_id)
    assert after.status == "done" and after.per_code == {"10.71": 6, "11.02": 6}
    rows = _samples(nace_project, run_id)
    assert len(rows) == 12 and len({(r[0], r[2].casefold()) for r in rows}) == 12
    units = {r[0] for r in nace_project.conn.execute("SELECT unit FROM generation_units WHERE run_id = ?", (run_id,))}
    assert {r[3] for r in rows} <= units
    # The same seed gives the same samples, whether the run was killed and resumed or not.
    with Project.open(twin_path) as twin:
        twin_run = create_run(twin, **definition)
        run_generation(twin, twin_run)
        assert [r[:3] for r in _samples(twin, twin_run)] == [r[:3] for r in rows]


def test_a_pause_interrupts_the_request_in_flight_and_resume_gives_the_same_samples(nace_project, gemma_path,
                                                                                   tmp_path):
    """Pause stops llama.cpp mid-request (at the next token), writes nothing of that request, lists the run
    as paused, and the resumed run ends with exactly the samples of a run that was never paused."""
    from engine.errors import Cancelled
    from engine.generate import PAUSED
    from engine.jobs import CancelToken

    class PauseAfterTokens(CancelToken):
        """Pause pressed while the second request decodes (checked once per token)."""

        def __init__(self, tokens: int):
            super().__init__()
            self.checks, self.tokens = 0, tokens

        def check(self) -> None:
            self.checks += 1
            if self.checks == self.tokens:
                self.cancel(PAUSED)
            super().check()

    shutil.copy(nace_project.path, tmp_path / "copy.statcoder")
    copy = Project.open(tmp_path / "copy.statcoder")
    runs = []
    for project in (nace_project, copy):
        runs.append(create_run(project, codes=["10.71"], quota=6, seed=5, model=str(gemma_path),
                               backend=gemma_settings(gemma_path), strategies=["notes"], params=PARAMS))
    token = PauseAfterTokens(tokens=30)
    with pytest.raises(Cancelled, match="paused"):
        run_generation(nace_project, runs[0], cancel=token)
    paused = run_status(nace_project, runs[0])
    assert paused.status == "paused" and paused.units < 2 and paused.done < 6
    run_generation(nace_project, runs[0])
    run_generation(copy, runs[1])
    texts = [r[2] for r in _samples(nace_project, runs[0])]
    assert texts == [r[2] for r in _samples(copy, runs[1])] and len(texts) == 6
    copy.close()
