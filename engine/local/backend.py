"""`LocalBackend`: a `LocalModel` as the `engine.serving.Backend` the server answers with.

Each call runs in a worker thread (`anyio.to_thread.run_sync`) so the event loop keeps serving,
one at a time per model (an `anyio.Lock`, first come first served; llama.cpp is not
re-entrant). At most `queue` calls wait or run at once: one more is answered 429 in the OpenAI
error shape, with ``Retry-After`` estimated from the queue's length and the recent service time,
which the engine's client (and the official SDK) honour before retrying.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from engine.local.model import LocalModel
from engine.serving.protocol import ApiError, Generation, GenerationRequest, Scored

__all__ = ["DEFAULT_QUEUE", "LocalBackend"]

DEFAULT_QUEUE = 64
_T = TypeVar("_T")


class LocalBackend:
    """Serialised, bounded access to one local model."""

    def __init__(self, model: LocalModel, *, queue: int = DEFAULT_QUEUE) -> None:
        if queue < 1:
            raise ValueError(f"queue must be >= 1, not {queue}")
        self.model = model
        self.queue = queue
        self._lock: anyio.Lock | None = None
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
        return await self._call(self.model.generate, request)

    async def prompt_logprobs(self, prompt: str, top: int) -> list[Scored]:
        return await self._call(self.model.prompt_logprobs, prompt, top)

    async def _call(self, function: Callable[..., _T], *args: object) -> _T:
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
        if self._lock is None:
            self._lock = anyio.Lock()
        self._pending += 1
        try:
            async with self._lock:
                started = time.perf_counter()
                try:
                    return await anyio.to_thread.run_sync(function, *args)
                finally:
                    elapsed = time.perf_counter() - started
                    self.calls += 1
                    self.busy_s += elapsed
                    self._service_s = 0.8 * self._service_s + 0.2 * elapsed
        finally:
            self._pending -= 1
