"""Anthropic's Messages API (``POST /v1/messages``), served beside the OpenAI routes so that the
client's second protocol is tested against a server that answers as Anthropic documents it:
``system`` at the top level, ``max_tokens`` required, ``stop_sequences`` (whitespace alone
refused), temperature in [0, 1], one answer per request, content blocks and ``stop_reason`` in
the answer, and errors as ``{"type": "error", "error": {"type", "message"}}``. The key comes in
``x-api-key`` (`engine.serving.keys`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from engine.serving.protocol import (
    ApiError,
    Generation,
    GenerationRequest,
    _content,
    _float,
    _int,
    _model,
    _object,
)

__all__ = ["anthropic_error_body", "messages_response", "parse_messages"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def anthropic_error_body(error: ApiError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def _stop_sequences(body: Mapping[str, Any]) -> tuple[str, ...]:
    stops = body.get("stop_sequences")
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "stop_sequences: Input should be a valid list of strings")
    if any(not s.strip() for s in stops):
        raise ApiError(400, "stop_sequences: each stop sequence must contain non-whitespace")
    return tuple(stops)


def parse_messages(body: Any) -> GenerationRequest:
    """A Messages API body as a `GenerationRequest` (400 naming the field when invalid)."""
    body = _object(body)
    model = _model(body)
    if "max_tokens" not in body:
        raise ApiError(400, "max_tokens: Field required")
    max_tokens = _int(body, "max_tokens", None, 1, 1_000_000)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: Field required (a non-empty list)")
    pairs: list[tuple[str, str]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        pairs.append(("system", system))
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise ApiError(400, f"messages.{index}.role: Input should be 'user' or 'assistant'")
        pairs.append((role, _content(message, index)))
    if body.get("n") is not None:
        raise ApiError(400, "n: Extra inputs are not permitted")
    prompt = next((content for role, content in reversed(pairs) if role == "user"), "")
    assert max_tokens is not None
    return GenerationRequest(
        api="chat",
        model=model,
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=_float(body, "temperature", 1.0, 0.0, 1.0),
        stop=_stop_sequences(body),
        messages=tuple(pairs),
    )


def messages_response(
    model: str, generation: Generation, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    text = generation.text
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": _STOP_REASONS.get(generation.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
    }
