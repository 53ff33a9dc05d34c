"""Reading an OpenAI-compatible answer: texts, finish reasons, log-probs and usage per choice.

The shapes are the OpenAI API reference's, "Chat Completions" and the legacy "Completions"
(``echo``, ``logprobs``: ``tokens``, ``token_logprobs``, ``text_offset``). A parser raises
`KeyError`, `TypeError`, `ValueError` or `AttributeError` on a body of another shape; the client
turns that into a retryable `MalformedResponseError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import EndpointError
from engine.llm.errors import MalformedResponseError
from engine.llm.results import TokenLogprobs, Usage

__all__ = [
    "Parsed",
    "continuation_logprobs",
    "continuation_slice",
    "parse_chat",
    "parse_completion",
]

Parsed = tuple[
    tuple[str, ...], tuple[str | None, ...], tuple[TokenLogprobs | None, ...], Usage | None
]
"""Texts, finish reasons and log-probs, one per choice in choice order, and the usage."""


def _usage(data: Mapping[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    return Usage(prompt, completion, total)


def _choices(data: Any) -> list[Any]:
    choices = data["choices"]
    if not isinstance(choices, list) or not choices:
        raise ValueError("no choices")
    if len(choices) > 1:
        choices = sorted(choices, key=lambda choice: int(choice.get("index", 0)))
    return choices


def parse_chat(data: Any) -> Parsed:
    """A /chat/completions answer."""
    texts: list[str] = []
    reasons: list[str | None] = []
    logprobs: list[TokenLogprobs | None] = []
    for choice in _choices(data):
        message = choice["message"]
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError("message content is not text")
        texts.append(content or "")
        reasons.append(choice.get("finish_reason"))
        block = choice.get("logprobs")
        if isinstance(block, dict) and isinstance(block.get("content"), list):
            items = block["content"]
            logprobs.append(
                TokenLogprobs(
                    tuple(str(item["token"]) for item in items),
                    tuple(float(item["logprob"]) for item in items),
                )
            )
        else:
            logprobs.append(None)
    return tuple(texts), tuple(reasons), tuple(logprobs), _usage(data)


def _completion_logprobs(block: Any) -> TokenLogprobs | None:
    if not isinstance(block, dict) or not isinstance(block.get("tokens"), list):
        return None
    tokens = tuple(str(token) for token in block["tokens"])
    values = tuple(None if v is None else float(v) for v in block.get("token_logprobs") or ())
    offsets = tuple(int(v) for v in block.get("text_offset") or ())
    if len(values) != len(tokens) or (offsets and len(offsets) != len(tokens)):
        raise ValueError("logprobs arrays of different lengths")
    return TokenLogprobs(tokens, values, offsets)


def parse_completion(data: Any) -> Parsed:
    """A /completions answer."""
    texts: list[str] = []
    reasons: list[str | None] = []
    logprobs: list[TokenLogprobs | None] = []
    for choice in _choices(data):
        text = choice["text"]
        if not isinstance(text, str):
            raise ValueError("choice text is not text")
        texts.append(text)
        reasons.append(choice.get("finish_reason"))
        logprobs.append(_completion_logprobs(choice.get("logprobs")))
    return tuple(texts), tuple(reasons), tuple(logprobs), _usage(data)


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
