"""The default transport: one ``aiohttp.ClientSession`` per endpoint with a ``TCPConnector``
sized to the concurrency (aiohttp allows 100 connections unless told otherwise), connect and
total timeouts, and connection-level failures turned into `engine.llm.errors` values so the
retry layer sees one kind of error.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from engine.llm.errors import ConnectionFailedError, EndpointTimeoutError
from engine.llm.transport.interface import RawResponse

__all__ = ["AiohttpTransport"]


class AiohttpTransport:
    """HTTP/1.1 keep-alive connections to one endpoint, at most `connections` open at once."""

    def __init__(
        self,
        base_url: str,
        *,
        endpoint: str,
        headers: Mapping[str, str],
        connections: int,
        connect_timeout_s: float,
        timeout_s: float,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._endpoint = endpoint
        self._headers = dict(headers)
        self._headers.setdefault("Content-Type", "application/json")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._timeout_s = timeout_s
        self._connections = connections
        self._session = self._new_session(connections)
        self._retired: list[aiohttp.ClientSession] = []

    def _new_session(self, connections: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=connections, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=False
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            timeout=self._timeout,
            # small JSON bodies: no compression to negotiate, and no cookies to keep
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    def resize(self, connections: int) -> None:
        """A larger pool needs a new connector: new calls use a new session; the old one is
        closed when the transport is (its connections finish their calls meanwhile)."""
        if connections > self._connections:
            self._retired.append(self._session)
            self._session = self._new_session(connections)
        self._connections = max(self._connections, connections)

    async def post(self, path: str, body: bytes) -> RawResponse:
        url = self._base_url + path
        try:
            async with self._session.post(url, data=body) as response:
                data = await response.read()
                return RawResponse(response.status, response.headers, data)
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise EndpointTimeoutError(
                f"endpoint {self._endpoint!r} did not answer within {self._timeout_s:g} s "
                f"({type(error).__name__}); raise timeout_s or lower the concurrency",
                retryable=True,
                endpoint=self._endpoint,
            ) from None
        except (aiohttp.ClientError, ConnectionError, OSError) as error:
            raise ConnectionFailedError(
                f"endpoint {self._endpoint!r} at {self._base_url}: connection failed "
                f"({type(error).__name__}: {error}); check that the server is up and base_url",
                retryable=True,
                endpoint=self._endpoint,
                # no connection was made: the request never left
                sent=not isinstance(error, aiohttp.ClientConnectorError),
            ) from None

    async def aclose(self) -> None:
        for session in (*self._retired, self._session):
            await session.close()
        self._retired.clear()
