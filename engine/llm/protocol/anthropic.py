"""Anthropic's Messages API as a second protocol of the client: ``POST /v1/messages`` on
aiohttp, no SDK (reference: Anthropic API, "Messages", "Errors", "Rate limits").

What differs from the OpenAI protocol: the key goes in ``x-api-key`` with an
``anthropic-version`` header; system messages are one top-level ``system`` string; ``max_tokens``
is required; stop sequences are ``stop_sequences``; there is one answer per request (no ``n``:
the client asks once per choice) and no log-probabilities. Answers are a list of content blocks
and ``stop_reason``; usage is ``input_tokens`` / ``output_tokens``. Errors come as ``{"type":
"error", "error": {"type", "message"}}``, 529 ``overloaded_error`` among them (retried), and the
``anthropic-ratelimit-*`` headers re-sync the limiter (`engine.llm.pacing.headers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from engine.errors import role_setting, setting_value
from engine.llm.errors import RequestRejectedError
from engine.llm.protocol.answers import Parsed
from engine.llm.protocol.dialect import stopping
from engine.llm.protocol.request import Request, estimate_tokens
from engine.llm.protocol.results import Completion, Usage

__all__ = [
    "ANTHROPIC_VERSION",
    "anthropic_headers",
    "messages_request",
    "no_completions",
    "parse_messages",
]

ANTHROPIC_VERSION = "2023-06-01"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def anthropic_headers(key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "anthropic-version": ANTHROPIC_VERSION}
    if key is not None:
        headers["x-api-key"] = key
    return headers


def messages_request(
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    max_tokens: int,
    temperature: float,
    stop: Sequence[str] | None,
    n: int,
    extra: Mapping[str, Any] | None,
) -> Request:
    """POST /messages for one answer (`n` is kept on the request: the client sends one request
    per choice, as the API gives one answer per request)."""
    system = "\n\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    turns = [
        {"role": str(m.get("role")), "content": str(m.get("content", ""))}
        for m in messages
        if m.get("role") != "system"
    ]
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": max(1, max_tokens),
        "messages": turns,
        "temperature": min(1.0, max(0.0, temperature)),  # the API's range is [0, 1]
    }
    if system:
        payload["system"] = system
    kept = [s for s in stop or () if s.strip()]
    if kept:
        payload["stop_sequences"] = kept
    # the API refuses a stop sequence of whitespace alone ("\n"): the client applies it
    blank = tuple(s for s in stop or () if not s.strip())
    parse = stopping(parse_messages, blank) if blank else parse_messages
    if extra:
        payload.update(extra)
    prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)
    body = bytes(memoryview(orjson.dumps(payload)))
    return Request("/messages", body, prompt_tokens, max_tokens * n, parse, n)


async def no_completions(endpoint: str) -> Completion:
    """What `complete` answers on a Messages API endpoint (a refusal, as a server's would be:
    the capability probe notes it and goes on)."""
    raise RequestRejectedError(
        f"endpoint {endpoint!r} speaks Anthropic's Messages API, which has no text completions "
        f"-- use the chat API ({setting_value(role_setting(endpoint, 'api'), 'chat')})",
        endpoint=endpoint,
        code="no_completions",
    )


def parse_messages(data: Any) -> Parsed:
    """One answer of the Messages API: its text blocks joined, why it ended, its usage."""
    blocks = data["content"]
    text = "".join(block["text"] for block in blocks if block.get("type") == "text")
    reason = data.get("stop_reason")
    usage_data = data.get("usage")
    usage = None
    if isinstance(usage_data, dict):
        prompt = int(usage_data.get("input_tokens") or 0)
        completion = int(usage_data.get("output_tokens") or 0)
        usage = Usage(prompt, completion, prompt + completion)
    return (text,), (_FINISH.get(reason, reason),), (None,), usage
