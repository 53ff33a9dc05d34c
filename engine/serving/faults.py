"""Injected faults: drawn for each admitted request from seeded rates, then acted out.

A fault answers 500 or 503 in the OpenAI error shape, hangs until the client gives up, resets
the connection, or lets the answer through with its JSON body cut short (the server does that
last one, since it needs the answer). The rates are `ServerSettings.fault_*`; the draws are
seeded by `ServerSettings.seed`, so a run repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter

from aiohttp import web

from engine.serving.protocol import ApiError
from engine.serving.settings import ServerSettings

__all__ = ["FaultReset", "Faults"]


class FaultReset(Exception):
    """The connection was aborted on purpose (a reset fault)."""


class Faults:
    """The fault draws of one server, and how many of each kind it acted out (`counts`)."""

    def __init__(self, settings: ServerSettings) -> None:
        self._rates = tuple((kind, rate) for kind, rate in settings.fault_rates() if rate > 0)
        self._draws = random.Random(f"faults:{settings.seed}")
        self._hang_s = settings.hang_s
        self._closing = asyncio.Event()
        self.counts: Counter[str] = Counter()

    def draw(self) -> str | None:
        """The fault kind for the next request, or None."""
        if not self._rates:
            return None
        roll = self._draws.random()
        for kind, rate in self._rates:
            if roll < rate:
                return kind
            roll -= rate
        return None

    def close(self) -> None:
        """The server stops: hanging requests end, as resets, and so will any later hang."""
        self._closing.set()

    async def act(self, kind: str, request: web.Request) -> None:
        """Act out a fault: raise the error answer, hang, or abort the connection."""
        self.counts[kind] += 1
        if kind == "500":
            raise ApiError(
                500,
                "The server had an error while processing your request (simulated fault).",
                type="server_error",
            )
        if kind == "503":
            raise ApiError(
                503,
                "The server is overloaded or not ready yet (simulated fault).",
                type="server_error",
                code="overloaded",
            )
        if kind == "hang":
            # Until the client gives up (the handler is cancelled), the server stops, or hang_s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._hang_s)
        if kind == "reset" or self._closing.is_set():
            if request.transport is not None:
                request.transport.abort()
            raise FaultReset
