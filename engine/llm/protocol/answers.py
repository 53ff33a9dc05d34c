"""Reading an OpenAI-compatible answer: texts, finish reasons, log-probs and usage per choice.

The shapes are the OpenAI API reference's, "Chat Completions" and the legacy "Completions"
(``echo``, ``logprobs``: ``tokens``, ``token_logprobs``, ``text_offset``). A parser raises
`KeyError`, `TypeError`, `ValueError` or `AttributeError` on a body of another shape; the client
turns that into a retryable `MalformedResponseError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.llm.protocol.results import TokenLogprobs, Usage

__all__ = ["Parsed", "parse_chat", "parse_completion"]

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
