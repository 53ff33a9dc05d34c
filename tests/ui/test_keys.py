"""Keys: bytes from a terminal decoded, each key's call on a StudyControl, and the raw-mode
reader restoring the terminal."""

from __future__ import annotations

import math
import os
import pty
import signal
import termios
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from engine.study.snapshot import BudgetRow, LimiterRow
from engine.ui.keys import BINDINGS, TERMINATE, apply_key, decode, help_text, keys_table
from engine.ui.state import UiState
from engine.ui.terminal import KeyReader
from tests.ui.snapshots import FakeControl, make_snapshot


def test_rate_keys_change_each_endpoint_from_its_own_limits() -> None:
    from tests.ui.test_render import pooled_snapshot

    snapshot = pooled_snapshot()
    limiters = (
        replace(snapshot.limiters[0], requests_per_minute=600.0),
        replace(snapshot.limiters[1], tokens_per_minute=100_000.0),
        *snapshot.limiters[2:],
    )
    control, state = FakeControl(replace(snapshot, limiters=limiters)), UiState()
    press(control, state, "R")
    assert control.calls == [
        ("set_rate_limits", (750.0, None, "gpu-a")),
        ("set_rate_limits", (1500.0, 125_000.0, "gpu-b")),
        ("set_rate_limits", (1500.0, None, "gpu-c")),
        ("set_rate_limits", (1500.0, None, "proposal")),
    ]
    assert (
        state.notice
        == "rate limits: gpu-a 600 rpm, tpm off -> 750 rpm, tpm off (and 3 more endpoints)"
    )
    unlimited = tuple(replace(row, requests_per_minute=None) for row in snapshot.limiters)
    control = FakeControl(replace(snapshot, limiters=unlimited))
    press(control, state, "r")  # 152.5 calls/s now: each scoring endpoint gets 80 % of its share
    assert control.calls == [
        ("set_rate_limits", (math.floor(152.5 * 60 * 0.48 * 0.8), None, "gpu-a")),
        ("set_rate_limits", (math.floor(152.5 * 60 * 0.46 * 0.8), None, "gpu-b")),
        ("set_rate_limits", (math.floor(152.5 * 60 * 0.06 * 0.8), None, "gpu-c")),
    ]  # the proposal endpoint serves no scoring calls: it stays unlimited


def test_decode_plain_arrows_controls_and_cut_sequences() -> None:
    assert decode(b"cC+-") == (["c", "C", "+", "-"], b"")
    assert decode(b"\x1b[A\x1b[Bj\x1bOA") == (["up", "down", "j", "up"], b"")
    assert decode(b"\x03\r\t") == (["ctrl-c", "enter", "tab"], b"")
    assert decode(b"x\x1b[") == (["x"], b"\x1b[")  # cut: kept for the next read
    assert decode(b"\x1b[" + b"B") == (["down"], b"")
    assert decode(b"\x1bq") == (["escape", "q"], b"")
    assert decode(b"\x1b[1;5Cq") == (["q"], b"")  # an unknown sequence is skipped whole
    assert decode("é".encode()) == (["é"], b"")
    assert decode("é".encode()[:1]) == ([], "é".encode()[:1])


def test_every_binding_is_on_the_help_line_and_in_the_table() -> None:
    help_line = help_text()
    table = keys_table()
    for binding in BINDINGS:
        assert binding.description in table
        if binding.label:
            assert binding.label in help_line
    keys = [key for binding in BINDINGS for key in binding.keys]
    assert len(keys) == len(set(keys))  # no key bound twice


def press(control: FakeControl, state: UiState, keys: str | list[str]) -> list[str | None]:
    return [apply_key(key, control, state) for key in keys]


def test_concurrency_keys_step_from_the_current_value() -> None:
    control, state = FakeControl(), UiState()
    press(control, state, "C+")
    assert control.calls == [("set_concurrency", 20), ("set_concurrency", 25)]
    assert state.notice == "concurrency 20 -> 25"
    control.calls.clear()
    press(control, state, "c-")
    assert control.calls == [("set_concurrency", 20), ("set_concurrency", 16)]
    low = FakeControl(make_snapshot(throughput=replace(make_snapshot().throughput, concurrency=1)))
    press(low, state, "c")
    assert low.calls == [] and "minimum" in state.notice


def test_rate_keys_scale_both_limits_or_set_one_from_the_measured_rate() -> None:
    control, state = FakeControl(), UiState()
    press(control, state, "R")
    assert control.calls == [("set_rate_limits", (7500.0, 112500.0))]
    press(control, state, "r")
    assert control.calls[-1] == ("set_rate_limits", (6000.0, 90000.0))
    unlimited = make_snapshot(limiters=(LimiterRow("target", None, None, 1.0, 1.0, False),))
    control = FakeControl(unlimited)
    press(control, state, "R")
    assert control.calls == [] and "off already" in state.notice
    press(control, state, "r")  # 152.5 calls/s now = 9150 per minute; 80 % of it
    assert control.calls == [("set_rate_limits", (7320.0, None))]
    idle = FakeControl(
        replace(unlimited, throughput=replace(unlimited.throughput, calls_per_s=0.0))
    )
    press(idle, state, "r")
    assert idle.calls == [] and "no call was measured" in state.notice


def test_budget_keys_never_go_below_what_is_spent() -> None:
    control, state = FakeControl(), UiState()
    press(control, state, "B")  # 2000 + max(25 %, n=200)
    assert control.calls == [("set_budget", ("scoring_calls", 2500))]
    press(control, state, "bb")
    assert control.calls[1:] == [
        ("set_budget", ("scoring_calls", 2000)),
        ("set_budget", ("scoring_calls", 1600)),
    ]
    press(control, state, "b")  # 80 % of 1600 = 1280, still above the 1234 spent
    press(control, state, "b")  # 80 % of 1280 = 1024 < 1235: the floor is spent + 1
    assert control.calls[-2:] == [
        ("set_budget", ("scoring_calls", 1280)),
        ("set_budget", ("scoring_calls", 1235)),
    ]
    calls = len(control.calls)
    press(control, state, "b")
    assert len(control.calls) == calls and "cannot go lower" in state.notice
    budgets = (BudgetRow("scoring_calls", 100.0, None),)
    unlimited = FakeControl(make_snapshot(budgets=budgets))
    press(unlimited, state, "B")
    assert unlimited.calls == [] and "unlimited already" in state.notice
    press(unlimited, state, "b")  # 80 % of full evaluation: 6 candidates x 200
    assert unlimited.calls == [("set_budget", ("scoring_calls", 960))]


def test_share_pause_select_drop_and_quit() -> None:
    control, state = FakeControl(), UiState()
    press(control, state, "NNn")
    assert control.calls == [
        ("set_new_candidate_share", 0.3),
        ("set_new_candidate_share", 0.35),
        ("set_new_candidate_share", 0.3),
    ]
    control.calls.clear()
    press(control, state, "p")
    press(control, state, " ")
    assert control.calls == [("pause", None), ("resume", None)]
    control.calls.clear()
    # the board order is 1, 3, 0, 4, 2, 5: the selection starts on the leader
    press(control, state, ["down", "j"])
    assert state.selected == 0
    press(control, state, "d")
    assert control.calls == [("drop_arm", 0)] and state.notice == "dropped #0"
    press(control, state, ["up", "k", "k", "k"])
    assert state.selected == 1  # stops at the top
    press(control, state, "d")
    assert control.calls[-1] == ("drop_arm", 1)
    calls = len(control.calls)
    press(control, state, "d")
    assert len(control.calls) == calls and "dropped already" in state.notice
    assert apply_key("z", control, state) is None
    assert not state.quit
    assert apply_key("q", control, state) == "quit" and state.quit
    assert ("cancel", None) not in control.calls  # quitting is the caller's decision


def test_a_refused_change_is_a_notice_not_a_crash() -> None:
    control, state = FakeControl(), UiState()
    control.refuse.add("set_concurrency")
    assert apply_key("C", control, state) == "concurrency_up"
    assert state.notice == "concurrency up: set_concurrency: refused by the test"


def test_notices_expire() -> None:
    now = [0.0]
    state = UiState(time_s=lambda: now[0])
    state.say("hello")
    assert state.current_notice() == "hello"
    now[0] = 10.0
    assert state.current_notice() == ""


def wait_for(reader: KeyReader, count: int) -> list[str]:
    keys: list[str] = []
    deadline = time.monotonic() + 5
    while len(keys) < count and time.monotonic() < deadline:
        keys += reader.pressed()
        time.sleep(0.01)
    return keys


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (the side a user types into, the side the program reads)."""
    leader, follower = pty.openpty()
    yield leader, follower
    os.close(leader)
    os.close(follower)


def test_key_reader_raw_mode_and_restore_on_a_pty(terminal: tuple[int, int]) -> None:
    leader, follower = terminal
    before = termios.tcgetattr(follower)
    with KeyReader(follower) as reader:
        raw = termios.tcgetattr(follower)
        assert not raw[3] & termios.ICANON and not raw[3] & termios.ECHO
        assert not raw[3] & termios.ISIG  # Ctrl-C is a key, not a signal
        os.write(leader, b"C\x1b[Bq\x03")
        assert wait_for(reader, 4) == ["C", "down", "q", "ctrl-c"]
        os.write(leader, b"\x1b")  # a lone ESC: the escape key after a short wait
        assert wait_for(reader, 1) == ["escape"]
    assert termios.tcgetattr(follower) == before


def test_key_reader_restores_the_terminal_on_error(terminal: tuple[int, int]) -> None:
    _, follower = terminal
    before = termios.tcgetattr(follower)
    changed = []

    def fail_inside() -> None:
        with KeyReader(follower):
            changed.append(termios.tcgetattr(follower) != before)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    assert changed == [True]
    assert termios.tcgetattr(follower) == before


def test_key_reader_reads_nothing_from_a_pipe() -> None:
    read_end, write_end = os.pipe()
    try:
        with KeyReader(read_end) as reader:
            assert not reader.active
            os.write(write_end, b"q")
            assert reader.pressed() == []
    finally:
        os.close(read_end)
        os.close(write_end)


def test_sigterm_restores_the_terminal_and_quits_like_q(terminal: tuple[int, int]) -> None:
    _, follower = terminal
    before = termios.tcgetattr(follower)
    handler = signal.getsignal(signal.SIGTERM)
    with KeyReader(follower) as reader:
        assert termios.tcgetattr(follower) != before
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(reader, 1) == [TERMINATE]
        assert termios.tcgetattr(follower) == before  # given back at once
        assert signal.getsignal(signal.SIGTERM) == handler  # a second SIGTERM: as before
    state = UiState()
    assert apply_key(TERMINATE, FakeControl(), state) == "quit" and state.quit
