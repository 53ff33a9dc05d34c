"""Header parsing, error classification and the retry policy: pure functions, no IO."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.llm.errors import (
    LLMError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
)
from engine.llm.pacing.headers import (
    BucketHint,
    parse_duration_s,
    parse_rate_limit_headers,
    parse_retry_after_s,
)
from engine.llm.protocol.classification import classify_response
from engine.llm.retry import RetryPolicy, call_with_retries


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("20ms", 0.02), ("1s", 1.0), ("1h2m3.5s", 3723.5), ("0.5", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1x"])
def test_unreadable_durations(text: str) -> None:
    assert parse_duration_s(text) is None


def test_retry_after_forms() -> None:
    assert parse_retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after_s({"retry-after": "3"}) == 3.0
    assert parse_retry_after_s(
        {"retry-after": "Wed, 21 Oct 2015 07:28:05 GMT"}, now_wall=1445412480.0
    ) == pytest.approx(5.0)
    assert parse_retry_after_s({}) is None


def test_openai_rate_limit_headers() -> None:
    hints = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert hints == (
        BucketHint("requests", 60, 59, 1.0),
        BucketHint("tokens", 150000, 149984, 360.0),
    )


def test_anthropic_rate_limit_headers() -> None:
    hints = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2024-05-01T00:00:10Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
        },
        now_wall=1714521600.0,  # 2024-05-01T00:00:00Z
    )
    by_name = {hint.name: hint for hint in hints}
    assert set(by_name) == {"requests", "input_tokens", "output_tokens"}
    assert by_name["requests"].reset_s == pytest.approx(10.0)
    assert by_name["output_tokens"].limit == 8000


def _body(error: dict[str, object]) -> bytes:
    return orjson.dumps({"error": error})


def test_classify_openai_quota_is_final() -> None:
    body = _body(
        {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    )
    error = classify_response(429, body, {}, endpoint="gpt")
    assert isinstance(error, QuotaExceededError)
    assert not error.retryable
    assert error.code == "insufficient_quota"
    assert "'gpt'" in str(error)


def test_classify_rate_limit_reads_try_again_hint() -> None:
    body = _body(
        {
            "message": "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, "
            "Used 30000, Requested 20. Please try again in 40ms.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        }
    )
    error = classify_response(429, body, {}, endpoint="gpt")
    assert isinstance(error, RateLimitError)
    assert error.retryable
    assert error.retry_after_s == pytest.approx(0.04)
    header_error = classify_response(429, body, {"retry-after": "2"}, endpoint="gpt")
    assert header_error.retry_after_s == 2.0


def test_classify_per_minute_quota_wording_is_a_rate_limit() -> None:
    body = _body({"message": "Quota exceeded for requests per minute", "code": 429})
    assert isinstance(classify_response(429, body, {}, endpoint="g"), RateLimitError)


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504, 529])
def test_classify_retryable_statuses(status: int) -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    error = classify_response(status, body, {}, endpoint="e")
    assert isinstance(error, ServerError)
    assert error.retryable
    assert "Overloaded" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_classify_other_4xx_final_with_server_message(status: int) -> None:
    body = orjson.dumps({"object": "error", "message": "max_tokens is too large", "code": status})
    error = classify_response(status, body, {}, endpoint="vllm")
    assert isinstance(error, RequestRejectedError)
    assert not error.retryable
    assert "max_tokens is too large" in str(error)
    assert error.status == status


def test_classify_cuts_the_key_out() -> None:
    body = _body({"message": "Incorrect API key provided: sk-secret-123456."})
    error = classify_response(401, body, {}, endpoint="e", secret="sk-secret-123456")
    assert "sk-secret-123456" not in str(error)
    assert "<redacted>" in str(error)


def test_classify_non_json_error_body() -> None:
    error = classify_response(502, b"<html>Bad Gateway</html>", {}, endpoint="e")
    assert error.retryable
    assert "Bad Gateway" in str(error)


@given(retry=st.integers(1, 30), u=st.floats(0, 1))
def test_full_jitter_is_bounded(retry: int, u: float) -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=30)
    delay = policy.delay_s(retry, None, lambda: u)
    assert 0 <= delay <= min(30, 0.5 * 2 ** (retry - 1))
    honoured = policy.delay_s(retry, 7.0, lambda: u)
    assert 7.0 <= honoured <= 7.7 + 1e-9


@pytest.mark.anyio
async def test_retries_are_bounded_and_counted() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    attempts: list[int] = []

    async def attempt(number: int) -> str:
        attempts.append(number)
        raise ServerError("boom", status=503, retryable=True, retry_after_s=0.5)

    with pytest.raises(ServerError, match="gave up after 3 attempts") as caught:
        await call_with_retries(attempt, RetryPolicy(max_attempts=3), sleep=sleep)
    assert attempts == [1, 2, 3]
    assert caught.value.attempts == 3
    assert len(slept) == 2
    assert all(0.5 <= s <= 0.55 for s in slept)


@pytest.mark.anyio
async def test_final_errors_are_not_retried_and_others_pass_through() -> None:
    calls = 0

    async def rejected(number: int) -> str:
        nonlocal calls
        calls += 1
        raise RequestRejectedError("bad", status=400)

    with pytest.raises(RequestRejectedError):
        await call_with_retries(rejected, RetryPolicy())
    assert calls == 1

    async def succeeds_second(number: int) -> int:
        if number == 1:
            raise LLMError("flaky", retryable=True)
        return number

    assert (
        await call_with_retries(succeeds_second, RetryPolicy(), sleep=lambda s: asyncio.sleep(0))
        == 2
    )
