"""Which waiting call the local backend runs next: the longest prompt prefix shared with the call
just run (the model's key-value cache covers it), first come among equals, and none passed over
without bound; or first come, first served. A stand-in model records the order, so these tests
need no llama.cpp."""

from __future__ import annotations

import threading
from typing import Any, cast

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.local.backend import _MAX_PASSED, LocalBackend, Order, common_prefix
from engine.local.model import LocalModel

pytestmark = pytest.mark.anyio


class Recorder:
    """Answers prompt_logprobs in a worker thread; the first call waits until released."""

    name = "recorder"

    def __init__(self) -> None:
        self.order: list[str] = []
        self.release = threading.Event()

    def prompt_logprobs(self, prompt: str, top: int) -> list[Any]:
        if not self.order:
            self.release.wait(10)
        self.order.append(prompt)
        return []


async def run_queued(order: Order, first: str, waiting: list[str]) -> list[str]:
    """`first` holds the model while `waiting` queue in that order; the order they ran in."""
    recorder = Recorder()
    backend = LocalBackend(cast(LocalModel, recorder), queue=1000, order=order)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.prompt_logprobs, first, 0)
        await anyio.wait_all_tasks_blocked()
        for prompt in waiting:  # one at a time, so they queue in this order
            group.start_soon(backend.prompt_logprobs, prompt, 0)
            await anyio.wait_all_tasks_blocked()
        assert backend.pending == 1 + len(waiting)
        recorder.release.set()
    return recorder.order


@given(st.text(max_size=30), st.text(max_size=30))
def test_common_prefix_is_the_longest_shared_start(a: str, b: str) -> None:
    n = common_prefix(a, b)
    assert a[:n] == b[:n]
    assert n == min(len(a), len(b)) or a[n] != b[n]


async def test_calls_of_the_candidate_just_run_go_first() -> None:
    waiting = ["B: 1", "A: 2", "B: 3", "A: 4", "C: 5"]
    order = await run_queued("prefix", "A: 0", waiting)
    assert order == ["A: 0", "A: 2", "A: 4", "B: 1", "B: 3", "C: 5"]


async def test_arrival_order_is_first_come_first_served() -> None:
    waiting = ["B: 1", "A: 2", "B: 3", "A: 4", "C: 5"]
    assert await run_queued("arrival", "A: 0", waiting) == ["A: 0", *waiting]


async def test_a_call_passed_over_too_often_runs_next() -> None:
    waiting = ["B: lonely", *[f"A: {i}" for i in range(2 * _MAX_PASSED)]]
    order = await run_queued("prefix", "A: first", waiting)
    assert order.index("B: lonely") == 1 + _MAX_PASSED
    assert sorted(order) == sorted(["A: first", *waiting])  # every call ran, once


async def test_a_cancelled_waiter_leaves_the_model_to_the_others() -> None:
    recorder = Recorder()
    backend = LocalBackend(cast(LocalModel, recorder), queue=10)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.prompt_logprobs, "A: 0", 0)
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0.05):
            await backend.prompt_logprobs("A: gone", 0)  # waits, then is cancelled
        group.start_soon(backend.prompt_logprobs, "B: 1", 0)
        await anyio.wait_all_tasks_blocked()
        assert backend.pending == 2
        recorder.release.set()
    assert recorder.order == ["A: 0", "B: 1"]
    assert backend.pending == 0
    assert await backend.prompt_logprobs("C: after", 0) == []  # the model is free again
