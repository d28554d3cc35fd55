"""What an operation changed reaches the pages as one `changed` signal (Anki's OpChanges), and pages run no SQL."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.changes import Changes, changes_of
from tests.conftest import REPO
from tests.desktop.conftest import wait_jobs


def test_changes_combine_and_name_what_changed():
    both = Changes(samples=True) | Changes.of("models")
    assert both.names() == ["samples", "models"] and both.touches("models") and not both.touches("realdata")
    assert not Changes() and bool(both)
    assert Changes.everything().touches("classification", "corrections")
    with pytest.raises(ValueError, match="unknown"):
        Changes.of("sample")
    assert changes_of(object()) is None


def test_a_job_result_that_carries_changes_is_announced_once(window, qtbot):
    @dataclass
    class Result:
        changes: Changes

    heard: list[Changes] = []
    window.ctx.changed.connect(heard.append)
    window.ctx.run("op", lambda progress, cancel: Result(Changes(samples=True, curation=True)))
    wait_jobs(qtbot, window)
    qtbot.waitUntil(lambda: bool(heard))
    assert heard == [Changes(samples=True, curation=True)]


def test_no_page_announces_changes_by_name():
    """Every page hears one `changed` signal carrying a Changes record (Anki's OpChanges)."""
    import desktop

    sources = [p for p in Path(desktop.__file__).parent.rglob("*.py")]
    assert not [p.name for p in sources if "data_changed" in p.read_text(encoding="utf-8")]


def test_training_says_it_changed_the_coders():
    from engine.coders.base import TrainedModel

    trained = TrainedModel(model_id=1, kind="fasttext", name="x", path=Path("x"), sha256="0", train_s=0.0,
                           params={}, composition={}, validation=None)
    assert changes_of(trained) == Changes(models=True)


def test_a_finished_generation_run_says_what_it_changed():
    from engine.generate import RunResult

    result = RunResult(run_id=1, status="done", samples=1, written=1, units=1, parse_failures=0, prompt_tokens=0,
                       cached_tokens=0, completion_tokens=0, seconds=1.0, device="cpu", shortfall={})
    assert changes_of(result) == Changes(runs=True, samples=True)


def _sql_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("conn", "execute", "executemany", "executescript"):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
    return found


def test_desktop_pages_and_widgets_call_engine_functions_never_sql():
    files = sorted((REPO / "desktop" / "pages").glob("*.py")) + sorted((REPO / "desktop" / "widgets").glob("*.py"))
    assert files
    assert [call for f in files for call in _sql_calls(f)] == []
