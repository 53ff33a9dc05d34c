"""Prompt-token log-probabilities of the local model: exact against a fresh evaluation, BOS-aware,
tokens that concatenate to the text, and a key-value cache that never leaks between prompts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.local import log_softmax_rows, split_text
from engine.serving.protocol import ApiError, GenerationRequest

PROMPT = "Write a word that means the opposite of the input word.\n\nInput: hot\nOutput: cold"


@given(st.text(max_size=40), st.lists(st.integers(0, 6), max_size=12))
@settings(max_examples=300, deadline=None)
def test_split_text_always_concatenates_to_the_text(text: str, lengths: list[int]) -> None:
    pieces = split_text(text, lengths)
    assert len(pieces) == len(lengths)
    if lengths:
        assert "".join(pieces) == text


def test_split_text_moves_a_cut_inside_a_character_to_its_end() -> None:
    # "é" is two bytes: a token holding its first byte takes the whole character
    assert split_text("café!", [3, 1, 1, 1]) == ["caf", "é", "", "!"]
    assert split_text("ab", [1, 1]) == ["a", "b"]


def test_log_softmax_rows_matches_float64_reference() -> None:
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(5, 1000)) * 4).astype(np.float32)
    targets = [1, 10, 999, 0, 500]
    values, alternatives = log_softmax_rows(logits, targets, 3)
    wide = logits.astype(np.float64)
    reference = wide - np.log(np.exp(wide - wide.max(1, keepdims=True)).sum(1, keepdims=True))
    reference -= wide.max(1, keepdims=True)
    for row, target in enumerate(targets):
        assert values[row] == pytest.approx(reference[row, target], abs=1e-5)
        best = np.argsort(-reference[row])[:3]
        assert [token for token, _ in alternatives[row]] == list(best)
        assert [value for _, value in alternatives[row]] == pytest.approx(reference[row, best])
    empty, none = log_softmax_rows(np.zeros((0, 4), dtype=np.float32), [], 2)
    assert empty.shape == (0,) and none == []


def _reference(model: Any, ids: list[int]) -> np.ndarray[Any, Any]:
    """log P(ids[r + 1] | ids[: r + 1]) from a fresh evaluation of every token."""
    llama = model._llama
    llama.reset()
    llama.eval(ids)
    logits = np.asarray(llama.scores[: len(ids) - 1], dtype=np.float64)
    norm = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    return logits[np.arange(len(ids) - 1), ids[1:]] - norm


def test_logprobs_equal_a_fresh_evaluation_and_tokens_rebuild_the_prompt(smollm2: Any) -> None:
    assert smollm2.bos is None  # SmolLM2's vocabulary adds no BOS: the case llama.cpp gets wrong
    scored = smollm2.prompt_logprobs(PROMPT, 2)
    assert "".join(s.token for s in scored) == PROMPT
    ids = smollm2._ids(PROMPT)
    assert len(scored) == len(ids)
    reference = _reference(smollm2, ids)
    # token 0 has no context; token j is scored by row j - 1, never by row j (the shift)
    assert scored[0].logprob == 0.0
    got = np.array([s.logprob for s in scored[1:]])
    assert got == pytest.approx(reference, abs=2e-3)
    assert scored[-1].token == " cold"
    for s in scored[1:]:
        assert len(s.top) == 2 and s.top[0][1] >= s.top[1][1]
        assert s.logprob <= s.top[0][1] + 1e-9


def test_a_bos_token_gives_the_first_text_token_its_context(smollm2: Any) -> None:
    bos = smollm2._ids("<|endoftext|>", special=True)
    assert len(bos) == 1
    saved = smollm2.bos
    smollm2.bos = bos[0]
    try:
        scored = smollm2.prompt_logprobs(PROMPT, 0)
    finally:
        smollm2.bos = saved
    ids = bos + smollm2._ids(PROMPT)
    reference = _reference(smollm2, ids)
    assert len(scored) == len(ids) - 1  # BOS itself is not a token of the text
    assert np.array([s.logprob for s in scored]) == pytest.approx(reference, abs=2e-3)
    assert "".join(s.token for s in scored) == PROMPT


def test_the_cache_reused_between_prompts_changes_no_value(smollm2: Any) -> None:
    first = smollm2.prompt_logprobs(PROMPT, 0)
    other = smollm2.prompt_logprobs(PROMPT.replace("hot", "tall") + " short", 0)
    again = smollm2.prompt_logprobs(PROMPT, 0)
    longer = smollm2.prompt_logprobs(PROMPT + "\n\nInput: tall\nOutput: short", 0)
    assert [s.logprob for s in again] == pytest.approx([s.logprob for s in first], abs=1e-4)
    assert [s.logprob for s in longer[: len(first)]] == pytest.approx(
        [s.logprob for s in first], abs=2e-3
    )
    assert other[-1].token == " short"


def test_multibyte_text_is_scored_with_exact_offsets(smollm2: Any) -> None:
    text = "Translate: naïve café — 日本語 ✓"
    scored = smollm2.prompt_logprobs(text, 1)
    assert "".join(s.token for s in scored) == text
    assert all(np.isfinite(s.logprob) and s.logprob <= 0 for s in scored)


def test_generated_tokens_echo_with_the_logprob_they_were_generated_with(smollm2: Any) -> None:
    prompt = "The capital of France is Paris. The capital of Italy is"
    request = GenerationRequest(
        api="completions", model="smollm2", prompt=prompt, max_tokens=1, temperature=0.0,
        logprobs=1,
    )  # fmt: skip
    (generation,) = smollm2.generate(request)
    token = generation.tokens[0]
    assert token.token == generation.text and token.top[0][0] == token.token  # greedy = best
    echoed = smollm2.prompt_logprobs(prompt + generation.text, 0)
    assert echoed[-1].token == generation.text
    assert echoed[-1].logprob == pytest.approx(token.logprob, abs=0.02)


def test_a_prompt_longer_than_the_context_is_a_400(smollm2: Any) -> None:
    with pytest.raises(ApiError) as error:
        smollm2.prompt_logprobs("word " * 2000, 0)
    assert error.value.status == 400 and error.value.code == "context_length_exceeded"
    assert "1024" in error.value.message
