"""What a call sends: the request body, encoded once, with its token estimate and its parser.

Bodies follow the OpenAI API reference, "Chat Completions" and the legacy "Completions". A
`Request` is built once per logical call and sent by every attempt; only its bytes stay alive
while the call is in flight, never the payload dict it was encoded from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from engine.llm.protocol.answers import Parsed, parse_chat, parse_completion

__all__ = ["Request", "chat_request", "completion_request", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning guess of the tokens in `text` (about 4 characters per token for
    English with BPE tokenizers); the limiter reconciles it with the reported usage."""
    return len(text) // 4 + 1


def _encode(payload: dict[str, Any]) -> bytes:
    # orjson hands back a 4 KiB allocation whatever the length: keep an exact-size copy
    return bytes(memoryview(orjson.dumps(payload)))


class Request:
    """One logical call: the request every attempt sends and how its answer is read."""

    __slots__ = ("body", "choices", "estimate", "output_tokens", "parse", "path", "prompt_tokens")

    def __init__(
        self,
        path: str,
        body: bytes,
        prompt_tokens: int,
        output_tokens: int,
        parse: Callable[[Any], Parsed],
        choices: int = 1,
    ) -> None:
        self.path = path
        self.choices = choices  # n: the choices asked for
        self.body = body
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.estimate = prompt_tokens + output_tokens
        self.parse = parse


def chat_request(
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    max_tokens: int,
    temperature: float,
    stop: Sequence[str] | None,
    n: int,
    logprobs: bool,
    top_logprobs: int | None,
    seed: int | None,
    extra: Mapping[str, Any] | None,
) -> Request:
    """POST /chat/completions; optional fields are sent only when they differ from the API's
    defaults."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": list(messages),
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if n != 1:
        payload["n"] = n
    if stop:
        payload["stop"] = list(stop)
    if logprobs:
        payload["logprobs"] = True
        if top_logprobs is not None:
            payload["top_logprobs"] = top_logprobs
    if seed is not None:
        payload["seed"] = seed
    if extra:
        payload.update(extra)
    prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)
    return Request(
        "/chat/completions", _encode(payload), prompt_tokens, max_tokens * n, parse_chat, n
    )


def completion_request(
    model: str,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float,
    stop: Sequence[str] | None,
    n: int,
    logprobs: int | None,
    echo: bool,
    suffix: str | None,
    seed: int | None,
    extra: Mapping[str, Any] | None,
) -> Request:
    """POST /completions; optional fields are sent only when they differ from the API's
    defaults."""
    payload: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if n != 1:
        payload["n"] = n
    if stop:
        payload["stop"] = list(stop)
    if logprobs is not None:
        payload["logprobs"] = logprobs
    if echo:
        payload["echo"] = True
    if suffix is not None:
        payload["suffix"] = suffix
    if seed is not None:
        payload["seed"] = seed
    if extra:
        payload.update(extra)
    prompt_tokens = estimate_tokens(prompt)
    return Request(
        "/completions", _encode(payload), prompt_tokens, max_tokens * n, parse_completion, n
    )
