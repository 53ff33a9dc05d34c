"""Rate-limit and retry hints that providers send in response headers.

References: OpenAI "Rate limits" guide (``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``,
resets written as Go durations such as ``6m0s``, ``1s`` or ``20ms``); Anthropic "Rate limits"
(``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``,
resets in RFC 3339); RFC 9110 section 10.2.3 ``Retry-After`` (seconds or an HTTP date) and the
``retry-after-ms`` header OpenAI and Azure send. Names of the buckets found are ``requests``,
``tokens``, ``input_tokens`` and ``output_tokens``; limits are per minute.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "BucketHint",
    "parse_duration_s",
    "parse_rate_limit_headers",
    "parse_retry_after_s",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_OPENAI_BUCKETS = {"requests": "requests", "tokens": "tokens"}
_ANTHROPIC_BUCKETS = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}


@dataclass(frozen=True, slots=True)
class BucketHint:
    """What the provider said about one of its limits: per-minute limit, what is left, and the
    seconds until the bucket is full again (None when not sent or unreadable)."""

    name: str
    limit: float | None
    remaining: float | None
    reset_s: float | None


def parse_duration_s(text: str) -> float | None:
    """Seconds in a Go-style duration (``6m0s``, ``1h2m3.5s``, ``20ms``) or a plain number of
    seconds; None when the text is neither."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    if position != len(text):
        return None
    return total


def _parse_rfc3339_s(text: str, now_wall: float) -> float | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now_wall)


def parse_retry_after_s(headers: Mapping[str, str], now_wall: float | None = None) -> float | None:
    """The wait the server asks for: ``retry-after-ms`` first (more precise), then
    ``Retry-After`` as seconds or an HTTP date. None when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    wall = time.time() if now_wall is None else now_wall
    return max(0.0, moment.timestamp() - wall)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def parse_rate_limit_headers(
    headers: Mapping[str, str], now_wall: float | None = None
) -> tuple[BucketHint, ...]:
    """Every limit the response's headers describe (OpenAI and Anthropic styles), possibly none.

    Cheap when the headers have none of these names: one lookup per known header.
    """
    hints: list[BucketHint] = []
    for suffix, name in _OPENAI_BUCKETS.items():
        limit = _number(headers.get(f"x-ratelimit-limit-{suffix}"))
        remaining = _number(headers.get(f"x-ratelimit-remaining-{suffix}"))
        if limit is None and remaining is None:
            continue
        reset_text = headers.get(f"x-ratelimit-reset-{suffix}")
        reset = parse_duration_s(reset_text) if reset_text is not None else None
        hints.append(BucketHint(name, limit, remaining, reset))
    if hints:
        return tuple(hints)
    for suffix, name in _ANTHROPIC_BUCKETS.items():
        limit = _number(headers.get(f"anthropic-ratelimit-{suffix}-limit"))
        remaining = _number(headers.get(f"anthropic-ratelimit-{suffix}-remaining"))
        if limit is None and remaining is None:
            continue
        reset_text = headers.get(f"anthropic-ratelimit-{suffix}-reset")
        reset = None
        if reset_text is not None:
            wall = time.time() if now_wall is None else now_wall
            reset = _parse_rfc3339_s(reset_text, wall)
        hints.append(BucketHint(name, limit, remaining, reset))
    return tuple(hints)
