"""Protocol pieces without a server: durations, buckets, body validation."""

from __future__ import annotations

import pytest

from engine.llm.pacing.headers import parse_duration_s
from engine.serving.protocol import ApiError, parse_chat, parse_completions
from engine.serving.ratelimit import Bucket, RateLimiter, format_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.02, "20ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3725, "1h2m5s")],
)
def test_durations_in_openai_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_bucket_refills_with_the_clock() -> None:
    now = [0.0]
    bucket = Bucket(60, lambda: now[0])
    bucket.take(60)
    assert bucket.remaining() == 0 and bucket.wait_s(1) == pytest.approx(1.0)
    now[0] = 30.0
    assert bucket.remaining() == 30 and bucket.reset_s() == pytest.approx(30.0)
    assert bucket.wait_s(1000) == pytest.approx(30.0)  # larger than the bucket: wait for full


def test_limiter_refuses_by_bucket_and_gives_back_unused_tokens() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 100, clock=lambda: now[0])
    assert limiter.admit("", 60).admitted
    refused = limiter.admit("", 60)
    assert not refused.admitted and refused.bucket == "tokens"
    assert refused.retry_after_s == pytest.approx(12.0)  # 20 tokens short at 100/min
    limiter.reconcile("", 60, 10)
    assert limiter.admit("", 60).admitted
    refused = limiter.admit("", 1)
    assert refused.bucket == "requests" and refused.retry_after_s == pytest.approx(30.0)
    headers = limiter.headers("")
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "sim-1", "messages": "x"}, "messages"),
        ({"model": "sim-1", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "sim-1", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": "sim-1", "messages": [{"role": "user"}], "n": True}, "n"),
        ({"model": "sim-1", "messages": [{"role": "user"}], "temperature": 3}, "temperature"),
        ({"model": "sim-1", "messages": [{"role": "user"}], "stop": [1]}, "stop"),
        ({"model": "sim-1", "messages": [{"role": "user"}], "top_logprobs": 2}, "top_logprobs"),
        ({"model": "sim-1", "messages": [{"role": "user"}], "stream": True}, "stream"),
    ],
)
def test_chat_bodies_are_validated_by_field(body: object, param: str | None) -> None:
    with pytest.raises(ApiError) as error:
        parse_chat(body)
    assert error.value.status == 400 and error.value.param == param


def test_completions_bodies() -> None:
    parsed = parse_completions(
        {"model": "sim-1", "prompt": ["a", "b"], "echo": True, "logprobs": 0, "max_tokens": 0}
    )
    assert [r.prompt for r in parsed.requests] == ["a", "b"] and parsed.echo
    assert parsed.requests[0].logprobs == 0 and parsed.requests[0].max_tokens == 0
    for body, param in (
        ({"model": "sim-1", "prompt": [1, 2]}, "prompt"),
        ({"model": "sim-1", "prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"model": "sim-1", "prompt": "x", "echo": "yes"}, "echo"),
    ):
        with pytest.raises(ApiError) as error:
            parse_completions(body)
        assert error.value.param == param
