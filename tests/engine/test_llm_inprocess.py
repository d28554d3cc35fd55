"""Real llama.cpp inference with the Gemma 3 270M test model: constrained, seeded, reusing the prefix."""

from __future__ import annotations

import json

import pytest

from engine.llm.backends import GenerationRequest, Prompt, open_backend
from engine.llm.constrain import parse_phrase_list, phrase_list_grammar
from tests.engine.llm_support import gemma_path, gemma_settings  # noqa: F401

pytestmark = pytest.mark.slow

PROMPT = Prompt(system="Short descriptions of business activities, as written on survey forms.",
                shared="Code 10.71: Manufacture of bread; manufacture of fresh pastry goods and cakes\n"
                       "This code includes:\n- manufacture of bakery products: bread and rolls",
                task="Write 3 short texts about: bread and rolls", cue="Answer (JSON list of 3 short texts): ")


@pytest.fixture(scope="module")
def backend(gemma_path):
    with open_backend(gemma_settings(gemma_path)) as loaded:
        yield loaded


def test_base_model_returns_a_parseable_list_under_the_grammar(backend):
    assert backend.prompt_kind == "completion" and backend.device == "cpu"
    grammar = phrase_list_grammar(items=3, max_words=5)
    done = backend.generate(GenerationRequest(prompt=PROMPT, seed=7, max_tokens=60, grammar=grammar))
    assert done.finish_reason == "stop", done.text
    value = json.loads(done.text)
    assert isinstance(value, list) and len(value) == 3
    assert all(1 <= len(item.split()) <= 5 for item in value)
    assert 0 < done.completion_tokens <= 60 and done.prompt_tokens > 30
    assert done.logprob is not None and done.logprob < 0
    assert parse_phrase_list(done.text).ok


def test_same_seed_same_text_with_and_without_prefix_reuse(backend):
    grammar = phrase_list_grammar(items=3, max_words=5)
    request = GenerationRequest(prompt=PROMPT, seed=11, max_tokens=60, grammar=grammar)
    backend.reset_cache()
    cold = backend.generate(request)
    warm = backend.generate(request)
    other_task = Prompt(PROMPT.system, PROMPT.shared, "Write 3 short texts about: cakes", PROMPT.cue)
    backend.generate(GenerationRequest(prompt=other_task, seed=11, max_tokens=60, grammar=grammar))
    after_other = backend.generate(request)
    assert cold.cached_tokens == 0
    assert warm.cached_tokens > 30 and after_other.cached_tokens == warm.cached_tokens
    assert cold.text == warm.text == after_other.text
    assert cold.logprob == pytest.approx(warm.logprob, abs=1e-3)
    # Another code's card still reuses the system text, which every code shares.
    other_code = Prompt(PROMPT.system, "Code 11.05: Manufacture of beer", PROMPT.task, PROMPT.cue)
    switched = backend.generate(GenerationRequest(prompt=other_code, seed=11, max_tokens=60, grammar=grammar))
    assert 5 < switched.cached_tokens < warm.cached_tokens
    texts = {backend.generate(GenerationRequest(prompt=PROMPT, seed=s, max_tokens=60, grammar=grammar)).text
             for s in (1, 2, 3)}
    assert len(texts) >= 2


def test_prompt_too_long_for_the_context_is_a_clear_error(backend):
    from engine.errors import ModelError

    long_prompt = Prompt(PROMPT.system, PROMPT.shared * 80, PROMPT.task, PROMPT.cue)
    with pytest.raises(ModelError, match="exceed the context size"):
        backend.generate(GenerationRequest(prompt=long_prompt, seed=1, max_tokens=20))
