"""Latency: how long a server waits before it answers, as a remote model would take.

In seconds, ``(latency_base_s + latency_per_token_s * tokens) * lognormal(0, latency_jitter)``
for an answer of `tokens` completion tokens, the jitter seeded by `ServerSettings.seed`.
"""

from __future__ import annotations

import asyncio
import random

from engine.serving.settings import ServerSettings

__all__ = ["Latency"]


class Latency:
    """The waits of one server."""

    def __init__(self, settings: ServerSettings) -> None:
        self._base_s = settings.latency_base_s
        self._per_token_s = settings.latency_per_token_s
        self._jitter = settings.latency_jitter
        self._draws = random.Random(f"latency:{settings.seed}")

    async def wait(self, tokens: int) -> None:
        delay = self._base_s + self._per_token_s * tokens
        if delay <= 0:
            return
        if self._jitter > 0:
            delay *= self._draws.lognormvariate(0.0, self._jitter)
        await asyncio.sleep(delay)
