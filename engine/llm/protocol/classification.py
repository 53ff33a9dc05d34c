"""Which kind of `LLMError` an error answer is, read from its status, headers and body.

Error bodies are read in the OpenAI shape (``{"error": {"message", "type", "code"}}``),
Anthropic's (``{"type": "error", "error": {"type", "message"}}``), vLLM's and llama.cpp's. A 429
or 4xx that means quota or billing (OpenAI ``insufficient_quota``) is a `QuotaExceededError`, not a
rate limit; the wait a server asks for (``Retry-After``, or "try again in 20ms" in the message)
goes on the error for the retry layer. The message never contains the API key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from engine.errors import role_setting, setting
from engine.llm.errors import (
    AuthenticationError,
    LLMError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
)
from engine.llm.pacing.headers import parse_duration_s, parse_retry_after_s

__all__ = ["classify_response", "key_settings", "redact"]

_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        "quota_exceeded",
        "insufficient_balance",
    }
)
_TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)
_MAX_MESSAGE = 500


def _param(body: bytes) -> str | None:
    """The request field an OpenAI-shaped error body names (``error.param``), if any."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) else None


def _server_message(body: bytes) -> tuple[str, str | None]:
    """The server's message and error code/type from an error body, whatever its dialect."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:_MAX_MESSAGE] or "(empty body)"), None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, str):
        return error[:_MAX_MESSAGE], None
    if not isinstance(error, dict):
        return str(data)[:_MAX_MESSAGE], None
    message = (
        error.get("message")
        or error.get("detail")
        or (data.get("message") if isinstance(data, dict) else None)
    )
    code = error.get("code")
    kind = error.get("type")
    code_text = code if isinstance(code, str) else (kind if isinstance(kind, str) else None)
    if isinstance(kind, str) and kind in _QUOTA_CODES:
        code_text = kind
    if not isinstance(message, str):
        message = orjson.dumps(error).decode()
    return message[:_MAX_MESSAGE], code_text


def _means_quota(message: str, code: str | None) -> bool:
    if code is not None and code in _QUOTA_CODES:
        return True
    lowered = message.lower()
    if "billing" in lowered or "credit balance" in lowered or "insufficient_quota" in lowered:
        return True
    per_period = "per minute" in lowered or "rate limit" in lowered or "per second" in lowered
    return "quota" in lowered and not per_period


def key_settings(endpoint: str) -> str:
    """The settings that give an endpoint's key, as the user names them."""
    return " or ".join(setting(role_setting(endpoint, f"api_key_{how}")) for how in ("env", "file"))


def redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "<redacted>")
    return text


def classify_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    endpoint: str,
    secret: str | None = None,
    url: str | None = None,
) -> LLMError:
    """The error for a non-2xx answer. `secret` (the API key) is cut out of the message;
    `url`, when given, is named beside the endpoint."""
    message, code = _server_message(body)
    message = redact(message, secret)
    at = f" at {url}" if url else ""
    where = f"endpoint {endpoint!r}{at} answered HTTP {status}"
    retry_after = parse_retry_after_s(headers)
    if retry_after is None:
        hint = _TRY_AGAIN.search(message)
        if hint is not None:
            retry_after = parse_duration_s(hint.group(1))
    common: dict[str, Any] = {"status": status, "code": code, "endpoint": endpoint}
    if (status == 429 or status in (400, 402, 403)) and _means_quota(message, code):
        return QuotaExceededError(
            f"{where}: {message} -- the account's quota or billing limit is exhausted; add "
            "credit or raise the quota, or switch this role to another endpoint (not retried)",
            retryable=False,
            **common,
        )
    if status == 429:
        return RateLimitError(
            f"{where} (rate limited): {message}",
            retryable=True,
            retry_after_s=retry_after,
            **common,
        )
    base_url = setting(role_setting(endpoint, "base_url"))
    if status in (405, 501):
        return RequestRejectedError(
            f"{where}: {message} -- this URL does not take the API's POST requests: it is not an "
            f"OpenAI-compatible LLM server; check {base_url} (where /chat/completions lives, "
            "usually ending in /v1)",
            retryable=False,
            **common,
        )
    if status in (408, 409) or status >= 500:
        return ServerError(
            f"{where}: {message}", retryable=True, retry_after_s=retry_after, **common
        )
    advice = {
        401: f"check the API key for this endpoint ({key_settings(endpoint)})",
        403: "the key is not allowed to use this model or endpoint",
        404: f"check {base_url} (it usually ends in /v1) and the model name "
        f"({setting(role_setting(endpoint, 'model'))})",
    }.get(status, "check the request parameters and the model name")
    kind = AuthenticationError if status in (401, 403) else RequestRejectedError
    rejected = kind(f"{where}: {message} -- {advice}", retryable=False, **common)
    rejected.param = _param(body)
    return rejected
