"""A lean HTTP/1.1 client transport on ``asyncio.Protocol`` and h11, behind the `Transport` protocol.

Opt-in (``EndpointConfig(transport="lean")``): for many thousands of calls in flight, where
aiohttp's per-request objects (its request coroutine, ``ClientResponse``, ``StreamReader``,
header multidicts) cost more than the call itself (bench/throughput.py part 4). It does what the
LLM client needs and no more: POST an already encoded JSON body to one endpoint, read a response
framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection, no
compression (no ``Accept-Encoding`` is sent), keep-alive connections reused (the most recently
used first), one request in flight per connection, at most `connections` open, connect and total
timeouts, TLS (``ssl.create_default_context()``) for ``https://`` URLs. Failures are the same
`engine.llm.errors` values the aiohttp transport raises: `EndpointTimeoutError` for timeouts,
`ConnectionFailedError` for refused, reset or closed connections, TLS failures and bytes that are
not HTTP (`sent` false when no connection was made); a body that is not the JSON expected is the
client's `MalformedResponseError`.

The bytes on the wire, both ways, are h11's (a sans-IO HTTP/1.1 state machine: RFC 9112 framing,
persistence and limits); this module owns the sockets, the pool, the timers and the errors.
While a call is in flight it holds a slotted `_Connection` (the protocol and its
``h11.Connection``, both reused across calls), a future and a timer handle, besides asyncio's
socket transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import h11

from engine.errors import ConfigError
from engine.llm.errors import ConnectionFailedError, EndpointTimeoutError
from engine.llm.transport.interface import RawResponse

__all__ = ["LeanTransport"]

MAX_HEAD_BYTES = 64 * 1024  # a status line and fields, a chunk size line or a trailer section
MAX_BODY_BYTES = 64 * 1024 * 1024
DNS_CACHE_S = 300.0

_NO_HEADERS: dict[str, str] = {}  # shared between answers, never written to
# timers run in one shared, empty context instead of a copy of the caller's per call
_TIMER_CONTEXT = contextvars.Context()
_END = h11.EndOfMessage()


class _ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this transport can read."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, its h11 state machine and the response it is waiting for."""

    __slots__ = (
        "body",
        "closed",
        "counted",
        "headers",
        "keep_alive",
        "owner",
        "parser",
        "status",
        "timer",
        "transport",
        "waiter",
    )

    def __init__(self, owner: LeanTransport) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[RawResponse] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.body: bytearray | None = None
        self.headers = _NO_HEADERS
        self.status = 0
        self.keep_alive = True
        self.closed = False
        self.counted = False  # counted among the owner's open connections

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.abort()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self._read(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                self._read(b"")  # a body framed by the end of the connection ends here
            else:
                self._fail(exc)
        self.owner._lost(self)

    # -- one exchange -----------------------------------------------------------------------

    def send(
        self, request: h11.Request, body: bytes, deadline: float
    ) -> asyncio.Future[RawResponse]:
        """Write `request` and `body`; the future gets the response, or fails at `deadline`
        (loop time). Raises `_ProtocolError` if h11 refuses the request."""
        assert self.transport is not None
        parser = self.parser
        try:
            wire = parser.send(request) + parser.send(h11.Data(data=body))
            parser.send(_END)
        except h11.ProtocolError as error:
            raise _ProtocolError(str(error)) from None
        loop = self.owner._loop
        waiter: asyncio.Future[RawResponse] = loop.create_future()
        self.waiter = waiter
        self.keep_alive = True
        self.timer = loop.call_at(deadline, self._time_out, context=_TIMER_CONTEXT)
        self.transport.write(wire)
        return waiter

    def abort(self) -> None:
        """Drop the connection at once (a failed, timed-out or cancelled exchange)."""
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    def _time_out(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())
        self.abort()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- reading the response -----------------------------------------------------------------

    def _read(self, data: bytes) -> None:
        """Hand h11 what arrived (``b""``: the server closed its side) and take the events it
        can make of it; settle the waiter once the response is whole or cannot be read."""
        parser = self.parser
        try:
            parser.receive_data(data)
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.EndOfMessage):
                    self._finish()
                    return
                self._take(event)
        except h11.ProtocolError as error:
            if data:
                self._fail(_ProtocolError(str(error)))
            else:
                started = self.status != 0 or bool(parser.trailing_data[0])
                where = "in the middle of the answer" if started else "before answering"
                self._fail(ConnectionResetError(f"the server closed the connection {where}"))
        except _ProtocolError as error:
            self._fail(error)

    def _take(self, event: object) -> None:
        """One event before the end of the response: its head, or a piece of its body."""
        if isinstance(event, h11.Data):
            body = self.body
            if body is None:
                self.body = body = bytearray()
            body += event.data
            _check_size(len(body))
        elif isinstance(event, h11.Response):
            headers: dict[str, str] = {}
            for name, value in event.headers:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            if event.status_code not in (204, 304):  # h11 reads no body for those
                _check_size(int(headers.get("content-length", 0)))
            self.status = event.status_code
            self.headers = headers
        elif not isinstance(event, h11.InformationalResponse):  # 1xx: the real answer follows
            # h11 pauses or reports a close only after the end of a response, and we stop there
            raise _ProtocolError(f"unexpected {event!r} before the end of the response")

    def _finish(self) -> None:
        self._stop_timer()
        waiter = self.waiter
        body = self.body
        response = RawResponse(self.status, self.headers, b"" if body is None else bytes(body))
        self.waiter = None
        self.headers = _NO_HEADERS
        self.body = None
        self.status = 0
        self.keep_alive = self._next_cycle()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _next_cycle(self) -> bool:
        """Ready the parser for the next exchange; False when the connection cannot carry one
        (either side said close, HTTP/1.0, or bytes beyond the answer: its framing lied)."""
        parser = self.parser
        if parser.our_state is not h11.DONE or parser.their_state is not h11.DONE:
            return False
        if parser.trailing_data != (b"", False):
            return False
        parser.start_next_cycle()
        return True

    def _fail(self, error: BaseException) -> None:
        waiter = self.waiter
        self.waiter = None
        self.body = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.abort()


def _check_size(size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise _ProtocolError(f"response body over {MAX_BODY_BYTES // 2**20} MiB")


class LeanTransport:
    """The `Transport` of `AiohttpTransport`, on bare asyncio protocols: HTTP/1.1 keep-alive
    connections to one endpoint, at most `connections` open at once, about half the memory per
    call in flight."""

    def __init__(
        self,
        base_url: str,
        *,
        endpoint: str,
        headers: Mapping[str, str],
        connections: int,
        connect_timeout_s: float,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"endpoint {endpoint!r}: base_url must be http:// or https:// with a host "
                f"(got {base_url!r})"
            )
        self._endpoint = endpoint
        self._base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        self._prefix = parts.path.rstrip("/")
        self._fields = self._header_fields(headers)
        self._targets: dict[str, bytes] = {}
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = timeout_s
        self._limit = connections
        self._open = 0  # connected or connecting
        self._idle: dict[_Connection, None] = {}  # insertion-ordered: popitem() = most recent
        self._busy: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._literal_address = _is_ip_literal(self._host)
        self._addresses: list[tuple[int, str, int]] = []
        self._addresses_until = 0.0
        self._lookup: asyncio.Task[list[tuple[int, str, int]]] | None = None
        self._loop: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, None)
        self._closed = False
        self.connections_opened = 0  # over the transport's life: keep-alive reuse shows here

    def _header_fields(self, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        """The fields every request carries, checked once here instead of on every call."""
        fields = {name.lower(): (name, value) for name, value in headers.items()}
        fields.setdefault("content-type", ("Content-Type", "application/json"))
        for forbidden in ("host", "content-length", "transfer-encoding", "connection"):
            fields.pop(forbidden, None)  # this transport writes those itself
        lines = [(b"Host", self._host_field().encode("latin-1"))]
        for lowered, (name, value) in fields.items():
            try:  # h11 checks field syntax (RFC 9110 section 5); its message would show the value
                field = (name.encode("latin-1"), value.strip(" \t").encode("latin-1"))
                h11.Request(method=b"POST", target=b"/", headers=[lines[0], field])
            except (h11.LocalProtocolError, UnicodeEncodeError):
                raise ConfigError(
                    f"endpoint {self._endpoint!r}: header {lowered!r} has a line break, NUL, "
                    "colon or other character not allowed in its name or value; fix "
                    "extra_headers or the API key"
                ) from None
            lines.append(field)
        return lines

    def _host_field(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        default = 443 if self._ssl is not None else 80
        return host if self._port == default else f"{host}:{self._port}"

    def _request(self, path: str, length: int) -> h11.Request:
        target = self._targets.get(path)
        if target is None:
            target = self._targets[path] = f"{self._prefix}{path}".encode("latin-1")
        fields = [*self._fields, (b"Content-Length", b"%d" % length)]
        return h11.Request(method=b"POST", target=target, headers=fields)

    @property
    def requests_in_flight(self) -> int:
        """Requests written and not yet answered (one per busy connection at most)."""
        return sum(1 for connection in self._busy if connection.waiter is not None)

    # -- the Transport protocol ------------------------------------------------------------------

    async def post(self, path: str, body: bytes) -> RawResponse:
        if self._closed:
            closed = f"endpoint {self._endpoint!r}: the transport is closed"
            raise ConnectionFailedError(closed, endpoint=self._endpoint, sent=False)
        loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        connection: _Connection | None = None
        try:
            connection = await self._acquire(deadline)
            # the request event is not kept in this frame while the answer is awaited
            response = await connection.send(self._request(path, len(body)), body, deadline)
        except TimeoutError:
            self._drop(connection)
            raise EndpointTimeoutError(
                f"endpoint {self._endpoint!r} did not answer within {self._timeout_s:g} s "
                "(lean transport); raise timeout_s or lower the concurrency",
                retryable=True,
                endpoint=self._endpoint,
            ) from None
        except (OSError, _ProtocolError) as error:
            self._drop(connection)
            raise ConnectionFailedError(
                f"endpoint {self._endpoint!r} at {self._base_url}: {_describe(error)}",
                retryable=True,
                endpoint=self._endpoint,
                sent=connection is not None,
            ) from None
        except BaseException:
            self._drop(connection)  # cancelled mid-exchange: the connection's state is unknown
            raise
        self._busy.discard(connection)
        if connection.keep_alive and not connection.closed and not self._closed:
            self._idle[connection] = None
        else:
            connection.abort()
        self._wake()
        return response

    def resize(self, connections: int) -> None:
        """Allow this many connections from now on (never fewer than before, as the aiohttp
        transport: open connections finish their calls)."""
        added = connections - self._limit
        self._limit = max(self._limit, connections)
        for _ in range(min(len(self._waiters), max(added, 0))):
            self._wake()

    async def aclose(self) -> None:
        self._closed = True
        if self._lookup is not None:
            self._lookup.cancel()
        for connection in (*self._idle, *self._busy):
            connection.abort()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("the transport was closed"))
        await asyncio.sleep(0)  # let the transports run connection_lost

    # -- the pool ----------------------------------------------------------------------------------

    async def _acquire(self, deadline: float) -> _Connection:
        while True:
            idle = self._idle
            while idle:
                connection, _ = idle.popitem()
                if not connection.closed:
                    self._busy.add(connection)
                    return connection
            if self._open < self._limit:
                self._open += 1
                try:
                    connection = await self._connect(deadline)
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
                self._busy.add(connection)
                return connection
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake()  # woken and leaving anyway: pass the turn on
                else:
                    waiter.cancel()
                raise

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _drop(self, connection: _Connection | None) -> None:
        if connection is not None:
            self._busy.discard(connection)
            connection.abort()

    def _lost(self, connection: _Connection) -> None:
        """A connection closed (by either side): it no longer counts, and frees a place."""
        self._idle.pop(connection, None)
        self._busy.discard(connection)
        if connection.counted:
            connection.counted = False
            self._open -= 1
            self._wake()

    async def _connect(self, deadline: float) -> _Connection:
        loop = self._loop
        connection = _Connection(self)
        timeout = min(self._connect_timeout_s, deadline - loop.time())
        failure: OSError | None = None
        async with asyncio.timeout(max(timeout, 0.0)):
            for family, host, port in await self._resolve():
                try:
                    await loop.create_connection(
                        lambda: connection,
                        host,
                        port,
                        family=family,
                        ssl=self._ssl,
                        server_hostname=self._host if self._ssl is not None else None,
                    )
                except OSError as error:
                    failure = error
                    continue
                connection.counted = True
                self.connections_opened += 1
                if self._closed:
                    connection.abort()
                    raise ConnectionResetError("the transport was closed")
                return connection
        raise failure or OSError(f"no address for {self._host}")

    async def _resolve(self) -> list[tuple[int, str, int]]:
        """The host's addresses: an IP literal as it is, a name looked up once per
        `DNS_CACHE_S` however many connections open at the same moment."""
        if self._literal_address:
            return [(0, self._host, self._port)]
        if self._addresses and self._loop.time() < self._addresses_until:
            return self._addresses
        if self._lookup is None or self._lookup.done():
            self._lookup = self._loop.create_task(self._look_up())
        return await asyncio.shield(self._lookup)

    async def _look_up(self) -> list[tuple[int, str, int]]:
        infos = await self._loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        addresses = [(family, str(address[0]), int(address[1])) for family, *_, address in infos]
        self._addresses = list(dict.fromkeys(addresses))
        self._addresses_until = self._loop.time() + DNS_CACHE_S
        return self._addresses


def _is_ip_literal(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return bool(ipaddress.ip_address(host))
    return False


def _describe(error: BaseException) -> str:
    """What went wrong on the wire, and what to check."""
    if isinstance(error, ssl.SSLError):
        return (
            f"TLS handshake failed ({type(error).__name__}: {error}); check that the server "
            "serves https on this port (use http:// in base_url if it does not) and its certificate"
        )
    if isinstance(error, _ProtocolError):
        return f"the answer is not HTTP/1.1 this client can read ({error}); check base_url"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused ({error}); check that the server is up and base_url"
    return (
        f"connection failed ({type(error).__name__}: {error}); check that the server is up "
        "and base_url"
    )
