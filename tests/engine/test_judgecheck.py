"""The LLM judge as the label check's second reader: flags stand only where the judge is confident."""

from __future__ import annotations

import re

import pytest

from engine.curate.judgecheck import JudgeConfirm
from engine.curate.labelcheck import LabelCheckOptions, label_check
from engine.curate.rules import make_sample
from engine.errors import StatcoderError
from tests.engine.llm_support import gemma_path, gemma_settings  # noqa: F401
from tests.engine.test_judge import BiasedBackend

SAMPLES = [make_sample(1, "10.71", "brewing ale"),          # mislabelled: it is beer (11.05)
           make_sample(2, "10.51", "goat cheese"),          # right, but the checker doubts it
           make_sample(3, "11.05", "lager brewery")]        # right, and the checker agrees


def doubtful_checker(train_pairs, texts):
    """Flags samples 1 and 2 by ranking another code confidently first; agrees with sample 3."""
    table = {"brewing ale": [("10.82", 0.9), ("11.05", 0.05), ("10.71", 0.03)],
             "goat cheese": [("10.82", 0.9), ("10.51", 0.05), ("11.05", 0.03)],
             "lager brewery": [("11.05", 0.9), ("10.71", 0.05), ("10.51", 0.03)]}
    return [table[t] for t in texts]


def test_flags_stand_only_where_the_judge_is_confident_and_take_its_code(nace_project):
    backend = BiasedBackend({"brewing ale": "11.05", "goat cheese": "10.51"}, skill=4.0, bias=0.0)
    confirm = JudgeConfirm(nace_project, backend, k=3, orders=3)
    options = LabelCheckOptions(mode="notes", checker=doubtful_checker, top_k=1, confident=0.8, confirm=confirm)
    plain = label_check(SAMPLES, reference=[("x", "10.71"), ("y", "11.05")],
                        options=LabelCheckOptions(mode="notes", checker=doubtful_checker, top_k=1, confident=0.8))[1]
    assert {h.sample_id for h in plain} == {1, 2} and all(h.suggested_code == "10.82" for h in plain)
    checks, hits = label_check(SAMPLES, reference=[("x", "10.71"), ("y", "11.05")], options=options)
    assert len(checks) == 3
    assert [(h.sample_id, h.suggested_code) for h in hits] == [(1, "11.05")]   # relabelled to the judge's code
    assert "LLM judge prefers 11.05" in hits[0].reason
    assert confirm.summary() == {"judged": 2, "confirmed": 1, "dismissed": 1,
                                 "seconds_per_judged": confirm.summary()["seconds_per_judged"]}
    assert options.describe()["confirm"]["name"] == "judge"


def test_an_unsure_judge_leaves_the_label_alone(nace_project):
    backend = BiasedBackend({"brewing ale": "11.05"}, skill=0.5, bias=0.0)   # barely prefers beer
    confirm = JudgeConfirm(nace_project, backend, k=3, orders=3, min_confidence=0.6)
    options = LabelCheckOptions(mode="notes", checker=doubtful_checker, top_k=1, confident=0.8, confirm=confirm)
    _, hits = label_check(SAMPLES, reference=[("x", "10.71"), ("y", "11.05")], options=options)
    assert hits == [] and confirm.dismissed == 2


class CardBackend(BiasedBackend):
    """Scripted channel judge as well: the text is likelier after the right code's card."""

    def continuation_logprobs(self, prefixes, continuation):
        from engine.llm.channel import ContinuationScores

        self.calls += 1
        right = self.right.get(continuation.strip())
        return ContinuationScores(tuple(-10.0 + (self.skill if f"Code {right}:" in p else 0.0) for p in prefixes), 3)


def test_the_judge_reads_flags_with_the_products_method(nace_project):
    # A backend that can score a text after each card gets the channel judge (the coding panel's method);
    # one that can only pick letters (a server) gets the letter judge.
    channel = JudgeConfirm(nace_project, CardBackend({"brewing ale": "11.05", "goat cheese": "10.51"}, skill=4.0))
    letters = JudgeConfirm(nace_project, BiasedBackend({"brewing ale": "11.05"}))
    assert channel.describe()["method"] == "channel" and channel.options.orders == 1
    assert letters.describe()["method"] == "letters"
    options = LabelCheckOptions(mode="notes", checker=doubtful_checker, top_k=1, confident=0.8, confirm=channel)
    _, hits = label_check(SAMPLES, reference=[("x", "10.71"), ("y", "11.05")], options=options)
    assert [(h.sample_id, h.suggested_code) for h in hits] == [(1, "11.05")]
    assert channel.backend.calls == 2            # one call per flag: all cards at once
    assert JudgeConfirm(nace_project, CardBackend({}), method="letters").describe()["method"] == "letters"
    with pytest.raises(StatcoderError):
        JudgeConfirm(nace_project, CardBackend({}), method="vote")


@pytest.mark.slow
def test_curation_with_the_gemma_judge_as_second_reader(nace_project, gemma_path):
    from engine.llm.backends import open_backend

    with open_backend(gemma_settings(gemma_path)) as backend:
        confirm = JudgeConfirm(nace_project, backend, k=3, orders=1, min_confidence=0.0)
        options = LabelCheckOptions(mode="notes", checker=doubtful_checker, top_k=1, confident=0.8, confirm=confirm)
        _, hits = label_check(SAMPLES, reference=[("x", "10.71"), ("y", "11.05")], options=options)
    assert confirm.judged == 2
    assert all(h.suggested_code in {"10.82", "11.05", "10.71", "10.51"} for h in hits)
    assert {h.sample_id for h in hits} <= {1, 2}


@pytest.mark.slow
def test_cli_curate_run_with_the_judge_reads_every_flag(capsys, nace_project, gemma_path):
    import json

    from engine.cli import main
    from tests.engine.test_curate import add_run

    path = str(nace_project.path)
    run_id, _ = add_run(nace_project, [("11.01", "whisky distillery"), ("11.02", "winery"),
                                       ("11.05", "spring water bottling plant"), ("11.03", "cider maker"),
                                       ("11.05", "craft beer brewery")], quota=1)
    nace_project.close()
    args = ["curate", "run", "-p", path, "--run", str(run_id), "--checker", "fasttext", "--check-mode", "notes",
            "--no-real-train", "--top-k", "1"]
    assert main(args + ["--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["flags"].get("label_check", 0)
    assert plain >= 1
    assert main(args + ["--judge", "--judge-model", str(gemma_path), "--judge-threads", "1",
                        "--judge-confidence", "0.99"]) == 0
    out = capsys.readouterr().out
    # The checker's flags vary a little between runs (fresh fastText models); the judge reads them all
    # and, asked for 99 % confidence, confirms none.
    found = re.search(r"judge: (\d+) flags read, 0 confirmed, (\d+) dismissed", out)
    assert found and int(found.group(1)) == int(found.group(2)) >= 1
