"""The LLM judge as the label check's second reader: flags stand only where the judge is confident."""

from __future__ import annotations

import re

import pytest

from engine.curate.judgecheck import JudgeConfirm
from engine.curate import list_flags
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
    assert confirm.summary() == {"judged": 2, "confirmed": 1, "dismissed": 1, "reused": 0,
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


class StopAfter(CardBackend):
    """The scripted channel judge that cancels the job after its n-th answer."""

    def __init__(self, right, stop_after, cancel):
        super().__init__(right, skill=4.0)
        self.stop_after, self.cancel = stop_after, cancel

    def continuation_logprobs(self, prefixes, continuation):
        scores = super().continuation_logprobs(prefixes, continuation)
        if self.calls == self.stop_after:
            self.cancel.cancel()
        return scores


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


MORE = SAMPLES + [make_sample(4, "10.51", "cheese dairy"),      # flagged towards 10.82 as well
                  make_sample(5, "10.71", "ale brewer")]          # flagged, judged beer


def grouping_checker(train_pairs, texts):
    table = {"cheese dairy": [("10.82", 0.9), ("10.51", 0.05), ("11.05", 0.03)],
             "ale brewer": [("10.82", 0.9), ("11.05", 0.05), ("10.71", 0.03)]}
    return [table.get(t) or doubtful_checker(train_pairs, [t])[0] for t in texts]


def _judged_check(project, backend, cancel=None):
    confirm = JudgeConfirm(project, backend, k=3, cancel=cancel)
    options = LabelCheckOptions(mode="notes", checker=grouping_checker, top_k=1, confident=0.8, confirm=confirm)
    _, hits = label_check(MORE, reference=[("x", "10.71"), ("y", "11.05")], options=options, cancel=cancel)
    return confirm, [(h.sample_id, h.suggested_code) for h in hits]


def test_flags_are_read_grouped_by_code_and_come_back_in_their_order(nace_project):
    backend = CardBackend({"brewing ale": "11.05", "ale brewer": "11.05"}, skill=4.0)
    seen = []
    original = backend.continuation_logprobs

    def spy(prefixes, continuation):
        seen.append(continuation.strip())
        return original(prefixes, continuation)

    backend.continuation_logprobs = spy
    confirm, hits = _judged_check(nace_project, backend)
    # Flags of one code follow each other (10.51 twice, then 10.71 twice), so their cards stay cached.
    assert seen == ["goat cheese", "cheese dairy", "brewing ale", "ale brewer"]
    assert hits == [(1, "11.05"), (5, "11.05")]         # the flags' order, not the reading order
    assert confirm.summary()["judged"] == 4 and confirm.summary()["reused"] == 0


def test_a_cancelled_judged_curation_resumes_without_asking_the_llm_again(nace_project):
    from engine.jobs import Cancelled, CancelToken

    right = {"brewing ale": "11.05", "ale brewer": "11.05"}
    token = CancelToken()
    first = StopAfter(right, 2, token)
    with pytest.raises(Cancelled):
        _judged_check(nace_project, first, cancel=token)
    assert first.calls == 2
    stored = nace_project.conn.execute("SELECT COUNT(*), MIN(judge_model_sha256) FROM judge_verdicts").fetchone()
    assert stored == (2, "scripted-sha")             # both answers kept, though the run was cancelled
    again = CardBackend(right, skill=4.0)
    confirm, hits = _judged_check(nace_project, again)
    assert again.calls == 2                          # only the two flags the first run had not reached
    assert confirm.summary()["reused"] == 2 and confirm.summary()["judged"] == 4
    assert hits == [(1, "11.05"), (5, "11.05")]
    fresh = CardBackend(right, skill=4.0)
    assert _judged_check(nace_project, fresh)[1] == hits and fresh.calls == 0


def test_a_kept_verdict_is_asked_again_when_a_card_or_the_judge_changes(nace_project):
    right = {"brewing ale": "11.05", "ale brewer": "11.05"}
    _judged_check(nace_project, CardBackend(right, skill=4.0))
    other = CardBackend(right, skill=4.0)
    other.model_sha256 = "another-judge"
    _judged_check(nace_project, other)
    assert other.calls == 4                          # another LLM: every flag asked afresh
    from engine.assist.judge import verdict_key
    from engine.llm.judge import Candidate, JudgeOptions

    cards = [Candidate("10.51", "Operation of dairies and cheese making", ("manufacture of cheese",)),
             Candidate("10.82", "Manufacture of cocoa, chocolate and sugar confectionery", ())]
    key = verdict_key("sha", "goat cheese", cards, JudgeOptions(method="channel"), None)
    edited = [cards[0], Candidate("10.82", cards[1].title, ("a new note line",))]
    assert key == verdict_key("sha", "goat cheese", list(cards), JudgeOptions(method="channel"), None)
    assert len({key, verdict_key("sha", "goat cheese", edited, JudgeOptions(method="channel"), None),
                verdict_key("sha", "goat cheese ", cards, JudgeOptions(method="channel"), None),
                verdict_key("sha", "goat cheese", cards, JudgeOptions(method="channel", max_lines=1), None),
                verdict_key("sha", "goat cheese", cards, JudgeOptions(method="channel"), [0.6, 0.4])}) == 5


def test_the_judge_does_not_read_flags_whose_sample_another_rule_rejects(nace_project):
    from engine.curate.store import CurationOptions, curate
    from tests.engine.test_curate import add_run, flags_of, status

    # "brewing ale" twice: the second is a duplicate, rejected whatever its label; the checker doubts all three.
    run_id, ids = add_run(nace_project, [("10.71", "brewing ale"), ("10.71", "brewing ale"), ("10.51", "goat cheese")])
    backend = CardBackend({"brewing ale": "11.05", "goat cheese": "10.51"}, skill=4.0)
    confirm = JudgeConfirm(nace_project, backend, k=3)
    check = LabelCheckOptions(mode="notes", checker=doubtful_checker, top_k=1, confident=0.8, confirm=confirm)
    curate(nace_project, run_ids=[run_id], options=CurationOptions(label_check=check, use_real_train=False))
    assert backend.calls == 2 and confirm.judged == 2          # the duplicate's flag was not read
    assert status(nace_project, ids[1])[0] == "rejected" and "duplicate" in flags_of(nace_project, ids[1])
    reasons = {f.sample_id: f.reason for f in list_flags(nace_project) if f.rule == "label_check"}
    assert "not read by the second reader" in reasons[ids[1]]
    assert "LLM judge prefers 11.05" in reasons[ids[0]] and ids[2] not in reasons   # read: kept, dismissed


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


def test_curation_settings_refuse_a_judge_without_the_label_check_or_with_a_bad_confidence():
    from engine.curate.settings import CurationSettings

    CurationSettings(judge=True).validate()
    for bad, words in ((CurationSettings(judge=True, label_check=False), "turn the label check on"),
                       (CurationSettings(judge=True, judge_confidence=1.5), "from 0 to 1, not 1.5"),
                       (CurationSettings(judge=True, judge_method="vote"), "'channel' or 'letters'")):
        with pytest.raises(StatcoderError, match=words):
            bad.validate()
