"""The simulator's pieces without a server: its tokens, and its knobs as command-line flags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli import build_parser
from engine.cli.sim import config_from_arguments
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


def test_help_documents_every_knob() -> None:
    parser = build_parser()
    sim = parser._subparsers._group_actions[0].choices["sim"]  # type: ignore[union-attr]
    text = sim.format_help()
    for flag in (
        "--task", "--seed", "--port", "--host", "--model", "--rpm", "--tpm", "--per-key-limits",
        "--require-key", "--api-key-env", "--latency-base-ms", "--latency-per-token-ms",
        "--latency-jitter", "--fault-500", "--fault-503", "--fault-hang", "--fault-reset",
        "--fault-malformed", "--good-share", "--debug-routes", "--quota-requests", "--chatty",
    ):  # fmt: skip
        assert flag in text


def test_command_line_round_trips_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SimConfig(
        tasks=("sum",), seed=4, requests_per_minute=100, tokens_per_minute=5000,
        per_key_limits=True, latency_base_s=0.25, latency_jitter=0.3, fault_503=0.1,
        fault_hang=0.05, good_share=0.2, quota_requests=7, debug_routes=True, chatty=True,
    )  # fmt: skip
    args = build_parser().parse_args(["sim", *sim_arguments(config)])
    assert config_from_arguments(args) == config
    monkeypatch.setenv("SIM_KEY", "sk-from-env")
    args = build_parser().parse_args(["sim", "--api-key-env", "SIM_KEY", "--fault-rate", "0.05"])
    parsed = config_from_arguments(args)
    assert parsed.api_keys == ("sk-from-env",) and parsed.fault_total() == pytest.approx(0.05)
    assert "sk-from-env" not in " ".join(sim_arguments(parsed))
