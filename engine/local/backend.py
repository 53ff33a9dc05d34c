"""`LocalBackend`: a `LocalModel` as the `engine.serving.Backend` the server answers with.

Each call runs in a worker thread (`anyio.to_thread.run_sync`) so the event loop keeps serving,
one at a time per model (llama.cpp is not re-entrant). At most `queue` calls wait or run at
once: one more is answered 429 in the OpenAI error shape, with ``Retry-After`` estimated from
the queue's length and the recent service time, which the engine's client (and the official
SDK) honour before retrying.

Which waiting call runs next is the backend's choice (`order`). ``"prefix"`` (the default) takes
the one whose prompt shares the longest prefix with the prompt just run, as SGLang's
longest-prefix-match scheduling does: the model keeps the key-value cache of the previous call's
common prefix, so a study's calls for one candidate run back to back and each evaluates only
its example. A call passed over `_MAX_PASSED` times runs next whatever its prefix, so none
waits without bound. ``"arrival"`` is first come, first served.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import anyio
import anyio.to_thread

from engine.local.model import LocalModel
from engine.serving.protocol import ApiError, Generation, GenerationRequest, Scored

__all__ = ["DEFAULT_QUEUE", "ORDERS", "LocalBackend", "Order", "common_prefix"]

DEFAULT_QUEUE = 64
Order = Literal["prefix", "arrival"]
ORDERS: tuple[Order, ...] = ("prefix", "arrival")
_MAX_PASSED = 32  # a waiting call passed over this often runs next
_T = TypeVar("_T")


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b` (by halving: slices compare in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _prompt_of(request: GenerationRequest) -> str:
    if request.messages:
        return "\n".join(content for _, content in request.messages)
    return request.prompt


@dataclass(eq=False)
class _Waiter:
    prompt: str
    event: anyio.Event = field(default_factory=anyio.Event)
    passed: int = 0


class LocalBackend:
    """Serialised, bounded access to one local model."""

    def __init__(
        self, model: LocalModel, *, queue: int = DEFAULT_QUEUE, order: Order = "prefix"
    ) -> None:
        if queue < 1:
            raise ValueError(f"queue must be >= 1, not {queue}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        self.model = model
        self.queue = queue
        self.order = order
        self._running = False
        self._waiting: list[_Waiter] = []  # in order of arrival
        self._last_prompt = ""
        self._pending = 0
        self._service_s = 0.1  # moving average of one call's time, for Retry-After
        self.calls = 0
        self.rejected = 0
        self.busy_s = 0.0

    @property
    def pending(self) -> int:
        """Calls waiting or running now."""
        return self._pending

    def tokenize(self, text: str) -> list[str]:
        # llama.cpp's tokenizer reads the vocabulary only: safe beside a running evaluation
        return self.model.tokenize(text)

    async def generate(self, request: GenerationRequest) -> list[Generation]:
        return await self._call(_prompt_of(request), self.model.generate, request)

    async def prompt_logprobs(self, prompt: str, top: int) -> list[Scored]:
        return await self._call(prompt, self.model.prompt_logprobs, prompt, top)

    async def _call(self, prompt: str, function: Callable[..., _T], *args: object) -> _T:
        if self._pending >= self.queue:
            self.rejected += 1
            wait_s = max(0.05, self._pending * self._service_s)
            raise ApiError(
                429,
                f"The local model {self.model.name} is busy: {self._pending} requests are "
                f"waiting or running, the most its queue holds (--queue {self.queue}). Please "
                f"try again in {wait_s:.2f}s, or send fewer requests at once.",
                type="requests",
                code="rate_limit_exceeded",
                headers={
                    "Retry-After": str(max(1, math.ceil(wait_s))),
                    "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
                },
            )
        self._pending += 1
        try:
            await self._turn(prompt)
            try:
                started = time.perf_counter()
                try:
                    return await anyio.to_thread.run_sync(function, *args)
                finally:
                    elapsed = time.perf_counter() - started
                    self.calls += 1
                    self.busy_s += elapsed
                    self._service_s = 0.8 * self._service_s + 0.2 * elapsed
            finally:
                self._last_prompt = prompt
                self._hand_on()
        finally:
            self._pending -= 1

    async def _turn(self, prompt: str) -> None:
        """Wait until this call may run (the model is then this call's until `_hand_on`)."""
        if not self._running and not self._waiting:
            self._running = True
            return
        waiter = _Waiter(prompt)
        self._waiting.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            else:  # the model was handed to this call as it was cancelled: hand it on
                self._hand_on()
            raise

    def _hand_on(self) -> None:
        """Give the model to the waiting call `order` picks, or leave it free."""
        if not self._waiting:
            self._running = False
            return
        chosen = 0
        if self.order == "prefix" and self._waiting[0].passed < _MAX_PASSED:
            shared = [common_prefix(w.prompt, self._last_prompt) for w in self._waiting]
            chosen = shared.index(max(shared))  # the earliest of the longest
        waiter = self._waiting.pop(chosen)
        for earlier in self._waiting[:chosen]:
            earlier.passed += 1
        waiter.event.set()
