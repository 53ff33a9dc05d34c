"""What the client asks of a transport: POST a JSON body, get status, headers and body back.

A Protocol so tests and benchmarks can run the real client logic without sockets (the httpx
``MockTransport`` idea). Both transports implement it (`engine.llm.transport.aiohttp`, the
default; `engine.llm.transport.lean`) and raise only `engine.llm.errors` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RawResponse", "Transport"]


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive for aiohttp; lower-case keys elsewhere
    body: bytes


class Transport(Protocol):
    async def post(self, path: str, body: bytes) -> RawResponse:
        """POST `body` (JSON bytes) to base_url + path."""
        ...

    def resize(self, connections: int) -> None:
        """Allow this many connections from now on."""
        ...

    async def aclose(self) -> None: ...
