"""Curation from the Review page (the options of `statcoder curate run`, on a worker with progress and cancel),
and the warnings, on the Train page and from `statcoder train`, about synthetic samples never curated."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt

from engine.generate import GenerationParams, create_run, run_generation
from engine.store.project import Project
from tests.conftest import REPO
from tests.desktop.conftest import wait_jobs
from tests.engine.llm_support import SCRIPTED, ScriptedBackend, gemma_path  # noqa: F401

JUNK = "Manufacture of bakery, bakery, bakery"
GOOD = {"10.71": ["fresh bread from the corner bakery", "baking rolls and baguettes", "cake shop baking gateaux",
                  "industrial bread loaves plant", "croissant bakery", "sourdough bread baking"],
        "10.72": ["rusks and dry biscuits factory", "crispbread manufacture", "wafer biscuit production",
                  "cookie factory", "gingerbread biscuits", "crackers and pretzels"]}


@pytest.fixture
def generated_path(nace_path):
    """Two generated runs' worth of samples for 10.71 and 10.72 (a scripted model), junk included, never curated."""
    texts = GOOD["10.71"][:2] + [JUNK] + GOOD["10.71"][3:] + GOOD["10.72"]
    batches = [texts[i:i + 3] for i in range(0, len(texts), 3)]   # the run asks for 10.71, then 10.72

    def answer(request):
        return json.dumps(batches.pop(0))

    with Project.open(nace_path) as project:
        run_id = create_run(project, codes=["10.71", "10.72"], quota=6, seed=1, backend=SCRIPTED,
                            strategies=["notes"], params=GenerationParams(per_request=3))
        run_generation(project, run_id, backend=ScriptedBackend(answer))
        assert project.conn.execute("SELECT COUNT(*) FROM samples WHERE text = ?", (JUNK,)).fetchone()[0] == 1
    return nace_path


def _junk(project):
    row = project.conn.execute("SELECT id, status FROM samples WHERE text = ?", (JUNK,)).fetchone()
    rules = [r[0] for r in project.conn.execute(
        "SELECT f.rule FROM sample_flags f JOIN samples s ON s.id = f.sample_id AND s.curation_id = f.curation_id"
        " WHERE s.id = ?", (row[0],))]
    return row[1], rules


def test_junk_is_flagged_after_running_curation_from_the_review_page(window, qtbot, generated_path):
    project = window.open_project(generated_path)
    window.show_page("review")
    page = window.pages["review"]
    assert _junk(project) == ("accepted", [])          # before: junk would train as an accepted sample

    def fill(dialog):
        dialog.label_check.setChecked(False)            # the rules alone (the label check is tested below)
        dialog.set_rule("near_duplicate", "run", True)

    page.open_dialog_hook = fill
    dialog = page.open_curation_dialog()
    progress = []
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert page.curation_job is not None and not page.curate_button.isEnabled()
    page.curation_job.signals.progress.connect(progress.append)
    wait_jobs(qtbot, window)
    assert page.last_curation is not None, window.messages.text
    assert _junk(project) == ("rejected", ["repeated_tokens"])
    # The page shows what it flagged: the summary, the "any flag" filter and the junk row with its flag.
    assert "repeated_tokens 1" in page.curation_summary.text() and page.curation_summary.isVisible()
    assert page.flag_filter.currentText() == "any flag"
    rows = {page.table.item(r, 6).text(): page.table.item(r, 5).text() for r in range(page.table.rowCount())}
    assert rows.get(JUNK) == "repeated_tokens"
    assert "rejected" in window.messages.text
    assert project.conn.execute("SELECT params FROM curation_runs").fetchone()[0].count("near_threshold") == 1


def test_curation_with_the_label_check_reports_progress_and_can_be_cancelled(window, qtbot, generated_path):
    project = window.open_project(generated_path)
    window.show_page("review")
    page = window.pages["review"]

    def fasttext_check(dialog):
        dialog.checker.setCurrentIndex(dialog.checker.findData("fasttext"))
        dialog.folds.setValue(2)

    page.open_dialog_hook = fasttext_check
    dialog = page.open_curation_dialog()
    progress = []
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    page.curation_job.signals.progress.connect(progress.append)
    qtbot.mouseClick(page.curation_progress.cancel_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, window)
    assert page.last_curation is None and "cancelled" in window.messages.text
    assert project.conn.execute("SELECT COUNT(*) FROM curation_runs").fetchone()[0] == 0   # nothing stored
    assert page.curate_button.isEnabled()

    page.open_dialog_hook = fasttext_check
    dialog = page.open_curation_dialog()
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    page.curation_job.signals.progress.connect(progress.append)
    wait_jobs(qtbot, window, timeout=120_000)
    assert page.last_curation is not None, window.messages.text
    folds = [p for p in progress if p.message.startswith("label check: fold")]
    assert folds and folds[-1].done == folds[-1].total == 2 and folds[0].eta_s is not None   # progress and ETA
    assert project.conn.execute("SELECT COUNT(*) FROM sample_checks").fetchone()[0] == 12
    assert json.loads(project.conn.execute("SELECT params FROM curation_runs").fetchone()[0])["label_check"]["folds"] == 2


def test_the_train_page_warns_about_uncurated_synthetic_samples(window, qtbot, generated_path):
    project = window.open_project(generated_path)
    window.show_page("train")
    page = window.pages["train"]
    page.weights["synthetic"].setValue(1)
    assert page.uncurated_label.isVisible() and "12 synthetic samples" in page.uncurated_label.text()
    page.weights["synthetic"].setValue(0)
    assert not page.uncurated_label.isVisible()
    page.weights["synthetic"].setValue(1)
    # Following the link goes to the Review page; once curated, the warning is gone.
    page.uncurated_label.linkActivated.emit("review")
    assert window.stack.currentWidget() is window.pages["review"]
    review = window.pages["review"]
    review.open_dialog_hook = lambda dialog: dialog.label_check.setChecked(False)
    review.open_curation_dialog().accept()
    wait_jobs(qtbot, window)
    window.show_page("train")
    assert not page.uncurated_label.isVisible()
    assert project.conn.execute("SELECT COUNT(*) FROM samples WHERE curation_id IS NULL").fetchone()[0] == 0


def test_statcoder_train_warns_about_uncurated_synthetic_samples(generated_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    base = [sys.executable, "-m", "engine"]
    args = ["train", "run", "-p", str(generated_path), "--synthetic", "1", "--notes", "1", "--subset", "10.7",
            "--epoch", "5", "--dim", "10", "--threads", "1", "--no-default"]
    done = subprocess.run(base + args, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "12 accepted synthetic samples in this mix were never curated" in done.stderr
    curate = subprocess.run(base + ["curate", "run", "-p", str(generated_path), "--no-label-check"], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert curate.returncode == 0 and "repeated_tokens" in curate.stdout, curate.stderr
    again = subprocess.run(base + args, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "never curated" not in again.stderr


def test_the_curation_dialog_runs_the_llm_judge_on_the_label_checks_flags(window, qtbot, generated_path, gemma_path):
    from engine.llm.registry import add_model, set_default_model

    from tests.engine.test_curate import add_run

    set_default_model(add_model(gemma_path).sha256)       # the test model as the default LLM (the judge's model)
    with Project.open(generated_path) as project:         # two bread texts labelled as biscuits: the check doubts them
        add_run(project, [("10.72", "bread loaves from the bakery"), ("10.72", "baking bread rolls and baguettes")])
    project = window.open_project(generated_path)
    window.show_page("review")
    page = window.pages["review"]

    def judged_check(dialog):
        assert not dialog.judge.isChecked() and not dialog.judge_confidence.isEnabled()    # off by default
        dialog.checker.setCurrentIndex(dialog.checker.findData("fasttext"))
        dialog.folds.setValue(2)
        dialog.top_k.setValue(1)
        dialog.judge.setChecked(True)
        assert dialog.judge_confidence.isEnabled()
        dialog.judge_confidence.setValue(0.0)            # every flag the judge reads stands, on its code
        assert dialog.settings().judge and dialog.settings().judge_confidence == 0.0

    for run in (1, 2):
        page.open_dialog_hook = judged_check
        dialog = page.open_curation_dialog()
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
        wait_jobs(qtbot, window, timeout=300_000)
        result = page.last_curation
        assert result is not None and result.judge is not None, window.messages.text
        assert result.judge["judged"] >= 1 and result.judge["judge_model_sha256"], (result.flags, result.judge)
        assert "The LLM judge read" in page.curation_summary.text()
        if run == 1:
            asked = result.judge["judged"] - result.judge["reused"]
            assert project.conn.execute("SELECT COUNT(*) FROM judge_verdicts").fetchone()[0] == asked
    # The second run asked the LLM nothing new: every flag was answered from the kept verdicts.
    assert result.judge["reused"] == result.judge["judged"]
    assert "answered from an earlier run's verdicts" in page.curation_summary.text()
