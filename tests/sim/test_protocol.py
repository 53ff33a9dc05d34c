"""Protocol pieces without a server: tokens, durations, buckets, body validation, CLI knobs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli import build_parser
from engine.cli.sim import config_from_arguments
from engine.llm.headers import parse_duration_s
from engine.serving.protocol import ApiError, parse_chat, parse_completions
from engine.serving.ratelimit import Bucket, RateLimiter, format_duration
from engine.sim import SimConfig, count_tokens, tokenize
from engine.sim.server import sim_arguments
from engine.sim.tokens import truncate


@given(st.text())
def test_tokens_concatenate_to_the_text_and_count_is_stable(text: str) -> None:
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert count_tokens(text) == len(tokens) == len(tokenize(text))


def test_token_estimate_is_about_four_characters() -> None:
    text = "Write the first letter of the word, then stop. " * 20
    assert len(text) / 6 < count_tokens(text) < len(text) / 3


def test_truncate_at_stop_then_max_tokens() -> None:
    assert truncate(" 42\nmore", 16, ("\n",)) == (" 42", "stop")
    assert truncate("one two three", 2) == ("one two", "length")
    assert truncate("anything", 0) == ("", "length")


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


def test_help_documents_every_knob() -> None:
    parser = build_parser()
    sim = parser._subparsers._group_actions[0].choices["sim"]  # type: ignore[union-attr]
    text = sim.format_help()
    for flag in (
        "--task", "--seed", "--port", "--host", "--model", "--rpm", "--tpm", "--per-key-limits",
        "--require-key", "--api-key-env", "--latency-base-ms", "--latency-per-token-ms",
        "--latency-jitter", "--fault-500", "--fault-503", "--fault-hang", "--fault-reset",
        "--fault-malformed", "--good-share", "--debug-routes", "--quota-requests",
    ):  # fmt: skip
        assert flag in text


def test_command_line_round_trips_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SimConfig(
        tasks=("sum",), seed=4, requests_per_minute=100, tokens_per_minute=5000,
        per_key_limits=True, latency_base_s=0.25, latency_jitter=0.3, fault_503=0.1,
        fault_hang=0.05, good_share=0.2, quota_requests=7, debug_routes=True,
    )  # fmt: skip
    args = build_parser().parse_args(["sim", *sim_arguments(config)])
    assert config_from_arguments(args) == config
    monkeypatch.setenv("SIM_KEY", "sk-from-env")
    args = build_parser().parse_args(["sim", "--api-key-env", "SIM_KEY", "--fault-rate", "0.05"])
    parsed = config_from_arguments(args)
    assert parsed.api_keys == ("sk-from-env",) and parsed.fault_total() == pytest.approx(0.05)
    assert "sk-from-env" not in " ".join(sim_arguments(parsed))
