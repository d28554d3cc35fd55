"""SuperGen per phrase: per-token logprobs from the backends, each phrase's share of its request's logprob
in the writer, the `logprob_tokens` column (old rows keep the per-request score), and SuperGen ranking
the phrases of one request."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from engine.curate import CurationOptions, MethodOptions, curate, list_flags
from engine.generate import create_run, run_generation
from engine.generate.writer import phrase_logprobs, phrase_spans
from engine.llm.backends import Completion, GenerationRequest, Prompt, open_backend
from engine.llm.base import span_logprob
from engine.llm.constrain import parse_phrase_list, phrase_list_grammar
from engine.store.project import Project
from tests.engine.llm_support import SCRIPTED, ScriptedBackend, gemma_path, gemma_settings  # noqa: F401
from tests.engine.test_curate import add_run

NO_CHECK = CurationOptions(label_check=None)

_PIECES = re.compile(r'\["|", "|"\]|\s*[^\s"\[\]]+')


def _tokenised(text: str) -> tuple[tuple[int, float], ...]:
    """A made-up tokenizer: '["', '", "', '"]' and each word (with its leading space) are tokens;
    the k-th token's logprob is -(k + 1) / 10."""
    pieces = _PIECES.findall(text)
    assert "".join(pieces) == text
    ends, at = [], 0
    for piece in pieces:
        at += len(piece.encode("utf-8"))
        ends.append(at)
    return tuple((end, -(k + 1) / 10) for k, end in enumerate(ends))


# spans and sums -------------------------------------------------------------------------------

def test_span_logprob_sums_the_tokens_that_overlap_the_byte_span():
    tokens = ((2, -0.1), (6, -0.2), (13, -0.3), (17, -0.4), (22, -0.5), (24, -0.6))   # '["milk powder", "cream"]'
    assert span_logprob(tokens, 2, 13) == (pytest.approx(-0.5), 2)          # 'milk', ' powder'
    assert span_logprob(tokens, 17, 22) == (pytest.approx(-0.5), 1)         # 'cream'
    assert span_logprob(tokens, 3, 5) == (pytest.approx(-0.2), 1)           # inside one token
    assert span_logprob(tokens, 24, 30) == (0.0, 0)                         # past the end: nothing


def test_phrases_are_found_in_order_in_bytes_even_with_multi_byte_characters():
    text = '["crème fraîche", "crème", "ale", "ale pale"]'
    spans = phrase_spans(text, ["crème fraîche", "crème", "ale pale", "stout"])
    raw = text.encode("utf-8")
    assert [raw[a:b].decode("utf-8") for a, b in spans[:3]] == ["crème fraîche", "crème", "ale pale"]
    # "crème" is the second item, not the start of the first; "ale pale" after it, not inside "ale"
    assert spans[1][0] == raw.index('"crème"'.encode("utf-8")) + 1
    assert spans[3] is None


def test_a_token_holding_part_of_a_character_counts_for_the_phrase_it_overlaps():
    text = '["é", "b"]'
    raw = text.encode("utf-8")          # 'é' is two bytes, 2..4; the tokenizer splits it in the middle
    assert raw[2:4] == "é".encode("utf-8")
    tokens = ((2, -0.1), (3, -1.0), (6, -2.0), (7, -0.3), (9, -0.4), (len(raw), -0.5))
    scores = phrase_logprobs(Completion(text=text, prompt_tokens=1, completion_tokens=6, logprob=-4.3,
                                        token_logprobs=tokens), ["é", "b"])
    # é: the token ending mid-character (3) and the one with its second byte and '", "' (6)
    assert scores["é"] == (pytest.approx(-3.0), 2)
    assert scores["b"] == (pytest.approx(-0.4), 1)       # the token '"b' (bytes 7..9)


def test_a_phrase_not_in_the_reply_falls_back_to_the_request_and_none_without_token_logprobs():
    text = '["ice  cream", "beer"]'
    phrases = parse_phrase_list(text).phrases                    # the parser tidies 'ice  cream'
    assert phrases == ["ice cream", "beer"]
    completion = Completion(text=text, prompt_tokens=1, completion_tokens=6, logprob=-2.8,
                            token_logprobs=_tokenised(text))
    scores = phrase_logprobs(completion, phrases)
    assert scores["ice cream"] == (-2.8, None)
    assert scores["beer"] == (pytest.approx(-0.5), 1)
    bare = dataclasses.replace(completion, token_logprobs=())
    assert phrase_logprobs(bare, phrases) == {"ice cream": (-2.8, None), "beer": (-2.8, None)}


# the writer -----------------------------------------------------------------------------------

class _TokenScripted(ScriptedBackend):
    """Answers with per-token logprobs from `_tokenised`, as the in-process backends do."""

    def generate(self, request: GenerationRequest) -> Completion:
        self.requests.append(request)
        text = self.answer(request)
        tokens = _tokenised(text)
        return Completion(text=text, prompt_tokens=100, completion_tokens=len(tokens), cached_tokens=60,
                          logprob=sum(lp for _, lp in tokens), token_logprobs=tokens)


def test_the_writer_stores_each_phrase_its_own_logprob_and_token_count(nace_project):
    answer = json.dumps(["bread", "cake", "ice  cream"])     # the parser tidies the third: not found as written
    # tokens: '["' -0.1, 'bread' -0.2, '", "' -0.3, 'cake' -0.4, '", "' -0.5, 'ice' -0.6, '  cream' -0.7, '"]' -0.8
    run_id = create_run(nace_project, codes=["10.71"], quota=3, seed=1, backend=SCRIPTED, strategies=["notes"])
    result = run_generation(nace_project, run_id, backend=_TokenScripted(lambda request: answer))
    assert result.logprob_fallbacks == 1
    rows = nace_project.conn.execute("SELECT text, logprob, logprob_tokens, completion_tokens FROM samples"
                                     " WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    assert [r[0] for r in rows] == ["bread", "cake", "ice cream"]
    assert rows[0][1:3] == (pytest.approx(-0.2), 1)
    assert rows[1][1:3] == (pytest.approx(-0.4), 1)
    # Not found as written: the request's logprob and no count, so it is scored per request
    assert rows[2][1] == pytest.approx(-3.6) and rows[2][2] is None
    assert {r[3] for r in rows} == {8}          # completion_tokens is still the request's


def test_the_writer_counts_phrases_it_could_not_find(nace_project):
    from engine.generate.runs import run_settings
    from engine.generate.writer import RunWriter

    run_id = create_run(nace_project, codes=["10.71"], quota=3, seed=1, backend=SCRIPTED, strategies=["notes"])
    row = dict(zip(["codes", "strategies", "quota", "seed", "model_sha256"], nace_project.conn.execute(
        "SELECT codes, strategies, quota, seed, model_sha256 FROM generation_runs WHERE id = ?", (run_id,)).fetchone()))
    _, params = run_settings(nace_project, run_id)
    writer = RunWriter(nace_project, run_id, row, params, _TokenScripted(
        lambda r: json.dumps(["a  b", "c  d", "beer"])))
    writer.run(progress=None, cancel=None)
    assert writer.logprob_fallbacks == 2 and writer.written == 3


# the project file -----------------------------------------------------------------------------

def test_an_older_file_gains_the_column_and_keeps_its_rows(tmp_path, monkeypatch):
    import engine.store.migrations as migrations
    import engine.store.project as project_module

    path = tmp_path / "old.statcoder"
    older = [(n, f) for n, f in migrations.MIGRATIONS if n != "m100_phrase_logprob"]
    monkeypatch.setattr(project_module, "MIGRATIONS", older)
    with Project.create(path) as old:
        columns = {r[1] for r in old.conn.execute("PRAGMA table_info(samples)")}
        assert "logprob_tokens" not in columns and "logprob" in columns
        with old.transaction() as conn:
            conn.execute("INSERT INTO codes (code, parent, level, title, is_leaf, ord) VALUES ('A', NULL, 1, 'a', 1, 1)")
            run = conn.execute("INSERT INTO generation_runs (name, strategies, codes, quota, seed, params)"
                               " VALUES ('r', '[]', '[]', 1, 0, '{}')").lastrowid
            conn.execute("INSERT INTO samples (run_id, code, text, text_key, strategy, unit, prompt_version,"
                         " prompt_hash, seed, model_sha256, backend, params, completion_tokens, logprob)"
                         " VALUES (?, 'A', 't', 't', 's', 'u', 'v', 'h', 0, 'm', 'b', '{}', 40, -20.0)", (run,))
    monkeypatch.setattr(project_module, "MIGRATIONS", migrations.MIGRATIONS)
    with Project.open(path) as new:
        assert new.conn.execute("SELECT logprob, completion_tokens, logprob_tokens FROM samples").fetchall() == [
            (-20.0, 40, None)]


# SuperGen -------------------------------------------------------------------------------------

def test_supergen_flags_the_least_probable_phrases_of_one_request_and_old_rows_per_request(nace_project):
    run_id, ids = add_run(nace_project, [("10.71", "bread"), ("10.71", "rusks"), ("10.71", "cakes"),
                                         ("10.71", "pastry"), ("11.05", "beer"), ("11.05", "ale")])
    values = {  # (logprob, completion tokens of the request, the phrase's own tokens)
        ids[0]: (-1.0, 40, 1),      # -1.0 per token of the phrase (per request: -0.025)
        ids[1]: (-6.0, 40, 12),     # -0.5                         (per request: -0.15)
        ids[2]: (-0.4, 40, 4),      # -0.1
        ids[3]: (-10.0, 40, 5),     # -2.0
        ids[4]: (-4.0, 8, None),    # an older row: per request, -0.5
        ids[5]: (-3.0, 2, None),    # -1.5
    }
    with nace_project.transaction() as conn:
        conn.executemany("UPDATE samples SET unit = 'one request', logprob = ?, completion_tokens = ?,"
                         " logprob_tokens = ? WHERE id = ?", [(*v, sid) for sid, v in values.items()])
    options = dataclasses.replace(NO_CHECK, methods=MethodOptions(supergen_share=0.5))
    curate(nace_project, run_ids=[run_id], options=options)
    flags = {f.sample_id: f.reason for f in list_flags(nace_project) if f.rule == "low_logprob"}
    # Per request the 10.71 half would be pastry and rusks; per phrase it is pastry and bread.
    assert set(flags) == {ids[3], ids[0], ids[5]}
    assert "-2.000 per token of the phrase" in flags[ids[3]] and "-1.500 per token of its request" in flags[ids[5]]


# real inference -------------------------------------------------------------------------------

PROMPT = Prompt(system="Short descriptions of business activities, as written on survey forms.",
                shared="Code 10.71: Manufacture of bread; manufacture of fresh pastry goods and cakes\n"
                       "This code includes:\n- manufacture of bakery products: bread and rolls",
                task="Write 4 short texts about: bread, cakes and pastry", cue="Answer (JSON list of 4 short texts): ")
GRAMMAR = phrase_list_grammar(items=4, max_words=4, max_word_chars=12)


def _check_split(completion: Completion) -> None:
    """Per-token values add up to the request; the phrases' shares plus the punctuation-only tokens too."""
    tokens = completion.token_logprobs
    assert len(tokens) == completion.completion_tokens > 0
    assert sum(lp for _, lp in tokens) == pytest.approx(completion.logprob, abs=1e-6)
    ends = [end for end, _ in tokens]
    assert ends == sorted(ends) and ends[-1] == len(completion.text.encode("utf-8"))
    parsed = parse_phrase_list(completion.text)
    assert parsed.ok and len(parsed.phrases) >= 2, completion.text     # repeats are dropped by the parser
    scores = phrase_logprobs(completion, parsed.phrases)
    assert all(count for _, count in scores.values()), (completion.text, scores)
    spans = [s for s in phrase_spans(completion.text, parsed.phrases)]
    outside, begin, shared = 0.0, 0, 0
    for end, lp in tokens:
        hits = sum(1 for a, b in spans if end > a and begin < b)
        outside += lp if hits == 0 else 0.0
        shared += max(0, hits - 1)
        begin = end
    assert shared == 0          # no token spans two phrases: the grammar puts '", "' between them
    total = sum(lp for lp, _ in scores.values())
    assert total + outside == pytest.approx(completion.logprob, abs=1e-4)
    assert outside < 0                                     # the JSON punctuation's tokens are left out
    assert sum(n for _, n in scores.values()) < completion.completion_tokens
    per_token = [lp / n for lp, n in scores.values()]
    assert len(set(round(v, 6) for v in per_token)) > 1    # the phrases of one reply differ


@pytest.mark.slow
def test_one_at_a_time_backend_gives_per_phrase_logprobs_that_add_up(gemma_path):
    with open_backend(gemma_settings(gemma_path)) as backend:
        for seed in (3, 4):
            _check_split(backend.generate(GenerationRequest(prompt=PROMPT, seed=seed, max_tokens=64,
                                                            grammar=GRAMMAR)))


@pytest.mark.slow
def test_batched_backend_gives_per_phrase_logprobs_per_slot(gemma_path):
    with open_backend(gemma_settings(gemma_path, parallel=3)) as backend:
        done = list(backend.generate_many([GenerationRequest(prompt=PROMPT, seed=s, max_tokens=64, grammar=GRAMMAR)
                                           for s in (3, 4, 5)]))
    for completion in done:
        _check_split(completion)
    assert len({c.token_logprobs for c in done}) == 3


@pytest.mark.slow
def test_a_real_run_stores_per_phrase_logprobs(nace_project, gemma_path):
    from engine.generate import GenerationParams

    run_id = create_run(nace_project, codes=["10.71"], quota=4, seed=2, model=str(gemma_path),
                        backend=gemma_settings(gemma_path), strategies=["notes"],
                        params=GenerationParams(per_request=4, max_words=4))
    run_generation(nace_project, run_id)
    rows = nace_project.conn.execute("SELECT unit, logprob, logprob_tokens, completion_tokens FROM samples"
                                     " WHERE run_id = ?", (run_id,)).fetchall()
    assert rows and all(r[1] is not None and r[1] < 0 for r in rows)
    found = [r for r in rows if r[2] is not None]
    assert found and all(0 < r[2] < r[3] for r in found)
    by_unit: dict[str, list[float]] = {}
    for unit, lp, n, _ in found:
        by_unit.setdefault(unit, []).append(round(lp / n, 6))
    assert any(len(set(v)) > 1 for v in by_unit.values())
