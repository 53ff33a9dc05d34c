"""log P(continuation | prompt) by echo: the check before the call, and the continuation's
tokens picked out of the answer.

The text scored is prompt + continuation, sent to completions with ``echo`` + ``logprobs`` so
that the answer carries the log-prob of every token of the text; the continuation's tokens are
chosen by ``text_offset``. Chat log-probs (of generated tokens only) are the chat call's
``logprobs=True``, read with the answer (`engine.llm.protocol.answers`).
"""

from __future__ import annotations

import math

from engine.errors import EndpointError
from engine.llm.errors import MalformedResponseError
from engine.llm.probing.capabilities import Capabilities, Capability, require_capability
from engine.llm.protocol.results import Completion, ContinuationLogprob, TokenLogprobs

__all__ = ["continuation_logprobs", "continuation_of", "continuation_slice", "echo_max_tokens"]


def echo_max_tokens(endpoint: str, continuation: str, capabilities: Capabilities | None) -> int:
    """The ``max_tokens`` of the echo call (0, or 1 where the probe found 0 misread); an
    `EndpointError` naming `endpoint` when there is nothing to score or the probe found that it
    cannot return prompt-token log-probabilities."""
    if not continuation:
        raise EndpointError(
            f"endpoint {endpoint!r}: continuation_logprob needs a non-empty continuation",
            endpoint=endpoint,
        )
    if capabilities is not None and not capabilities.prompt_logprobs:
        require_capability(capabilities, Capability.PROMPT_LOGPROBS)
    return capabilities.echo_max_tokens if capabilities is not None else 0


def continuation_of(
    result: Completion, prompt_chars: int, text_chars: int, endpoint: str
) -> ContinuationLogprob:
    """The continuation's log-prob in the echo answer `result` to a text of `text_chars`
    characters whose first `prompt_chars` are the prompt."""
    block = result.logprobs[0] if result.logprobs else None
    tokens, values = continuation_logprobs(block, prompt_chars, text_chars, endpoint)
    return ContinuationLogprob(
        logprob=math.fsum(values),
        tokens=tuple(tokens),
        token_logprobs=tuple(values),
        usage=result.usage,
        latency_s=result.latency_s,
        attempts=result.attempts,
        endpoint=endpoint,
        model=result.model,
    )


def continuation_slice(logprobs: TokenLogprobs, prompt_chars: int, text_chars: int) -> range:
    """Indices of the tokens that make up text[prompt_chars:text_chars], chosen by
    `text_offset`; a token straddling the boundary belongs to the continuation."""
    offsets = logprobs.text_offset
    start = len(offsets)
    for index, offset in enumerate(offsets):
        if offset >= prompt_chars:
            start = index
            break
    if start > 0 and offsets[start - 1] + len(logprobs.tokens[start - 1]) > prompt_chars:
        start -= 1
    stop = start
    while stop < len(offsets) and offsets[stop] < text_chars:
        stop += 1
    return range(start, stop)


def continuation_logprobs(
    block: TokenLogprobs | None, start: int, end: int, endpoint: str
) -> tuple[list[str], list[float]]:
    """The tokens and log-probs of the text between characters `start` and `end` of an echo
    answer's log-prob `block`; an `EndpointError` naming `endpoint` when the answer cannot
    say (no prompt-token log-probs, or none over that text)."""
    if block is None or not block.text_offset:
        raise EndpointError(
            f"endpoint {endpoint!r} returned no prompt-token log-probabilities for an echo "
            "request; it cannot do log-probability scoring -- use execution-accuracy scoring",
            endpoint=endpoint,
            code="no_prompt_logprobs",
        )
    values: list[float] = []
    tokens: list[str] = []
    for index in continuation_slice(block, start, end):
        value = block.logprobs[index]
        if value is None:
            if index == 0:
                continue  # the very first token of a text has no log-prob
            raise MalformedResponseError(
                f"endpoint {endpoint!r}: echo log-prob missing for token {index}",
                endpoint=endpoint,
            )
        values.append(value)
        tokens.append(block.tokens[index])
    if not values:
        raise EndpointError(
            f"endpoint {endpoint!r}: the echoed log-probabilities do not cover the "
            "continuation (the server returned only generated tokens?) -- use "
            "execution-accuracy scoring",
            endpoint=endpoint,
            code="no_prompt_logprobs",
        )
    return tokens, values
