"""Diversity control (Chung et al. 2023): words over-used for a code get their logits lowered in its later requests."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from engine.generate import GenerationParams, create_run, run_generation
from engine.generate.runs import phrase_words
from engine.llm.backends import GenerationRequest, Prompt, open_backend
from engine.llm.sampling import suppression_bias
from tests.engine.llm_support import SCRIPTED, ScriptedBackend, gemma_path, gemma_settings  # noqa: F401


def test_overused_words_skip_function_words_and_respect_the_threshold():
    params = GenerationParams(suppress_penalty=5.0, suppress_min_count=2, suppress_max_words=2)
    counts = Counter({"bakery": 4, "the": 9, "bread": 2, "cakes": 1, "rolls": 2})
    assert params.overused(counts) == (("bakery", 5.0), ("bread", 5.0))
    assert GenerationParams().overused(counts) == ()                 # off by default
    assert phrase_words("Bakery of 2 Breads, a bakery!") == {"bakery", "breads"}


def test_suppression_bias_only_touches_single_token_spellings():
    vocab = {"bread": [1], " bread": [2], "Bread": [3], " Bread": [4, 5], "croissant": [6, 7]}
    bias = suppression_bias(lambda text: vocab.get(text, [9, 9]), [("bread", 4.0), ("croissant", 4.0)])
    assert bias == {1: -4.0, 2: -4.0, 3: -4.0}


def test_writer_passes_the_codes_overused_words_and_records_them(nace_project):
    answers = iter(range(1000))

    def answer(request):
        n = next(answers)
        return json.dumps([f"bakery {n} a", f"bakery {n} b", f"bakery {n} c"])

    params = GenerationParams(per_request=3, suppress_penalty=8.0, suppress_min_count=3)
    run_id = create_run(nace_project, codes=["10.71"], quota=9, seed=1, backend=SCRIPTED, strategies=["notes"],
                        params=params)
    backend = ScriptedBackend(answer)
    run_generation(nace_project, run_id, backend=backend)
    assert backend.requests[0].suppress == ()
    assert ("bakery", 8.0) in backend.requests[-1].suppress
    conditions = [json.loads(c) for (c,) in nace_project.conn.execute(
        "SELECT condition FROM samples WHERE run_id = ? ORDER BY id", (run_id,))]
    assert "suppressed" not in conditions[0] and conditions[-1]["suppressed"] == ["bakery"]
    sampling = json.loads(nace_project.conn.execute("SELECT params FROM samples LIMIT 1").fetchone()[0])
    assert sampling["suppress_penalty"] == 8.0


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_suppressed_word_leaves_gemmas_output(gemma_path, parallel):
    import dataclasses

    settings = gemma_settings(gemma_path)
    settings = dataclasses.replace(settings, hardware=dataclasses.replace(settings.hardware, parallel=parallel))
    from engine.llm.constrain import phrase_list_grammar

    prompt = Prompt(system="Short descriptions of business activities, as written on survey forms.",
                    shared="Code 10.71: Manufacture of bread; manufacture of fresh pastry goods and cakes\n"
                           "This code includes:\n- manufacture of bakery products: bread and rolls",
                    task="Write 3 short texts about: bread and rolls", cue="Answer (JSON list of 3 short texts): ")
    with open_backend(settings) as backend:
        request = GenerationRequest(prompt=prompt, seed=7, max_tokens=60, temperature=0.0,
                                    grammar=phrase_list_grammar(items=3, min_words=1, max_words=6))
        plain = backend.generate(request).text.casefold()
        assert "bread" in plain
        suppressed = backend.generate(dataclasses.replace(request, suppress=(("bread", 100.0),))).text.casefold()
    assert "bread" not in phrase_words(suppressed) and suppressed != plain
