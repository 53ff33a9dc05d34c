"""The simulator's tokenizer: a deterministic split of text into word pieces.

Real models count tokens with their BPE vocabulary (roughly one token per four characters of
English). The simulator needs the same properties without a vocabulary: a token count that is
stable for a text, and tokens that concatenate back to the text exactly, so that `echo` with
`logprobs` can list them with their `text_offset` (OpenAI legacy completions format); and the
log-probabilities the world gives them. A token is
a run of up to four letters or three digits with at most one leading space, one other symbol with
at most one leading space, or one whitespace character.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from engine.serving.protocol import Scored

__all__ = ["answer_tokens", "context_token", "count_tokens", "tokenize", "truncate"]

_TOKEN = re.compile(r" ?[^\W\d_]{1,4}| ?\d{1,3}| ?[^\s\w]| ?_|\s")


def tokenize(text: str) -> list[str]:
    """The tokens of `text`; ``"".join(tokenize(text)) == text`` always holds."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """The number of tokens of `text` (what `usage` reports)."""
    return len(_TOKEN.findall(text))


def truncate(text: str, max_tokens: int, stop: tuple[str, ...] = ()) -> tuple[str, str]:
    """Cut generated `text` at the first stop sequence, then at `max_tokens` tokens.

    Returns the text and the finish reason: ``"stop"`` when the text ended (naturally or at a
    stop sequence, which is not included), ``"length"`` when `max_tokens` cut it.
    """
    for sequence in stop:
        if sequence:
            position = text.find(sequence)
            if position >= 0:
                text = text[:position]
    tokens = _TOKEN.findall(text)
    if len(tokens) > max_tokens:
        return "".join(tokens[:max_tokens]), "length"
    return text, "stop"


def context_token(token: str, unit: Callable[..., float]) -> Scored:
    """A prompt token's log-prob: plausible, fixed per token (`unit`: the world's seeded draw)."""
    value = -0.2 - 5.0 * unit("token", token)
    return Scored(token, value, ((token, value),))


def answer_tokens(tokens: list[str], mean: float, unit: Callable[..., float]) -> tuple[Scored, ...]:
    """Token log-probs whose mean is `mean` (a little uneven, never above 0)."""
    if not tokens:
        return ()
    weights = [unit("spread", token, i) * 2 - 1 for i, token in enumerate(tokens)]
    centre = sum(weights) / len(weights)
    scored = []
    for token, weight in zip(tokens, weights, strict=True):
        value = mean * (1.0 + 0.3 * (weight - centre))
        other = math.log(max(1e-12, 1.0 - math.exp(value)))
        scored.append(Scored(token, value, ((token, value), ("?", other))))
    return tuple(scored)
