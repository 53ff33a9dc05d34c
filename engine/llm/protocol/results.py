"""What an LLM call returns: frozen values holding only what the engine uses (no raw bodies)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Completion", "ContinuationLogprob", "TokenLogprobs", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    """Per-token log-probabilities of one choice; `text_offset` only from the completions API."""

    tokens: tuple[str, ...]
    logprobs: tuple[float | None, ...]
    text_offset: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Completion:
    """The answer to `chat` or `complete`: one text per choice (n), in choice order.

    `latency_s` is the round trip of the attempt that succeeded; `attempts` counts them all.
    """

    texts: tuple[str, ...]
    finish_reasons: tuple[str | None, ...]
    usage: Usage
    latency_s: float
    attempts: int
    endpoint: str
    model: str
    logprobs: tuple[TokenLogprobs | None, ...] = ()

    @property
    def text(self) -> str:
        return self.texts[0]

    @property
    def finish_reason(self) -> str | None:
        return self.finish_reasons[0]


@dataclass(frozen=True, slots=True)
class ContinuationLogprob:
    """log P(continuation | prompt) from the endpoint's own tokens.

    `score` = exp(mean token log-prob), in [0, 1]: the APE log-probability reward.
    """

    logprob: float
    tokens: tuple[str, ...]
    token_logprobs: tuple[float, ...]
    usage: Usage
    latency_s: float
    attempts: int
    endpoint: str
    model: str = ""

    @property
    def mean_logprob(self) -> float:
        return self.logprob / len(self.token_logprobs) if self.token_logprobs else 0.0

    @property
    def score(self) -> float:
        return math.exp(self.mean_logprob)
