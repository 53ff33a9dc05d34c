"""The lean HTTP/1.1 transport (`engine.llm.transport.lean`) under the real client, against the simulator
on loopback and a few tiny servers for what the simulator does not send (chunked bodies, closes,
bytes that are not HTTP): both APIs, keep-alive reuse counted at both ends, the pool limit, 429
headers, each fault class retried, timeouts, cancellation, TLS refused by a plain server. Its
response parsing is fuzzed over a scripted socket: every outcome is the RawResponse the whole
message reads as, or a ConnectionFailedError; never another exception, never a wait after a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.llm import (
    ConnectionFailedError,
    EndpointConfig,
    EndpointTimeoutError,
    LLMClient,
    LLMError,
    MalformedResponseError,
    RetryPolicy,
)
from engine.llm.transport.interface import RawResponse
from engine.llm.transport.lean import LeanTransport, _Connection
from engine.sim import SimConfig, SimServer, serve_sim
from tests.llm.test_against_sim import MESSAGES, TASK, drain

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
PROMPT = "Add the two numbers.\n\nInput: 2 3\nOutput:"
CHOICE = {"index": 0, "message": {"role": "assistant", "content": "5"}, "finish_reason": "stop"}
USAGE = {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}
CHAT_ANSWER = dict(id="c-1", object="chat.completion", model="m", choices=[CHOICE], usage=USAGE)


def lean_config(base_url: str, **options: Any) -> EndpointConfig:
    fixed = {"name": "sim", "model": "sim-1", "retry": FAST, "transport": "lean"}
    return EndpointConfig(base_url=base_url, **fixed | {"timeout_s": 10.0} | options)


def bare_transport(base_url: str, **options: Any) -> LeanTransport:
    """The transport alone, without the client."""
    values = {"endpoint": "sim", "headers": {}, "connections": 1, "connect_timeout_s": 5}
    return LeanTransport(base_url, **values | {"timeout_s": 10} | options)


def lean_transport(client: LLMClient) -> LeanTransport:
    transport = client._transport
    assert isinstance(transport, LeanTransport)
    return transport


class PeerCountingSim(SimServer):
    """The simulator, noting the client address and port of each request's connection."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.peers: list[tuple[str, int]] = []

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def note(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            assert request.transport is not None
            self.peers.append(request.transport.get_extra_info("peername")[:2])
            return await handler(request)

        app.middlewares.append(note)
        return app


@asynccontextmanager
async def peer_counting_sim(**knobs: Any) -> AsyncIterator[PeerCountingSim]:
    server = PeerCountingSim(SimConfig(tasks=(TASK,), **knobs))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def raw_server(answer: Callable[[bytes], list[bytes]]) -> AsyncIterator[str]:
    """A loopback server that reads one request head and body and writes `answer(body)` piece
    by piece (an empty piece closes the connection); its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                for piece in answer(body):
                    if not piece:
                        writer.close()
                        return
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.01)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()


# -- both APIs, the same answers as the aiohttp transport ---------------------------------------


async def test_chat_and_completions_answer_as_through_aiohttp() -> None:
    async with serve_sim(SimConfig(tasks=(TASK,))) as server:
        answers = {}
        for name in ("aiohttp", "lean"):
            async with LLMClient(lean_config(server.base_url, transport=name)) as client:
                chat = await client.chat(MESSAGES, max_tokens=8)
                text = await client.complete(PROMPT, max_tokens=8, logprobs=1, echo=True)
                scored = await client.continuation_logprob("Input: 2 3\nOutput:", " 5")
                answers[name] = (chat.texts, chat.usage, text.texts, text.logprobs, scored.logprob)
                assert client.stats().succeeded == 3 and client.stats().errors == {}
    assert answers["lean"] == answers["aiohttp"]
    assert answers["lean"][3][0] is not None  # echo log-probs came through whole


async def test_keep_alive_reuses_one_connection_for_calls_in_turn() -> None:
    async with peer_counting_sim() as server, LLMClient(lean_config(server.base_url)) as client:
        for _ in range(10):
            await client.chat(MESSAGES, max_tokens=4)
        transport = lean_transport(client)
        assert transport.connections_opened == 1
    assert len(server.peers) == 10 and len(set(server.peers)) == 1


async def test_pool_holds_at_most_its_connections_and_loses_no_call() -> None:
    async with peer_counting_sim(latency_base_s=0.02) as server:
        transport = bare_transport(server.base_url, connections=3)
        body = orjson.dumps({"model": "sim-1", "messages": MESSAGES, "max_tokens": 4})
        posts = [transport.post("/chat/completions", body) for _ in range(60)]  # none run yet
        try:
            answers = await asyncio.gather(*posts[:30])
            transport.resize(6)
            more = await asyncio.gather(*posts[30:])
        finally:
            await transport.aclose()
    assert [raw.status for raw in answers + more] == [200] * 60
    assert all(orjson.loads(raw.body)["choices"] for raw in answers)
    assert transport.connections_opened == 6
    assert len(set(server.peers[:30])) == 3 and len(set(server.peers)) == 6


async def test_chunked_answer_read_whole() -> None:
    # aiohttp's server sends a StreamResponse without a length as chunks, one per write
    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        fields = {"Content-Type": "application/json", "X-Ratelimit-Limit-Requests": "50"}
        response = web.StreamResponse(headers=fields)
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = orjson.dumps(CHAT_ANSWER)
        for start in range(0, len(data), 17):
            await response.write(data[start : start + 17])
            await asyncio.sleep(0.005)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with LLMClient(lean_config(f"http://127.0.0.1:{port}/v1")) as client:
            first = await client.chat(MESSAGES, max_tokens=4)
            second = await client.chat(MESSAGES, max_tokens=4)
            opened = lean_transport(client).connections_opened
            reading = client.limiter.reading()  # the head of a chunked answer read like any other
    finally:
        await runner.cleanup()
    assert first.text == second.text == "5" and first.usage.total_tokens == 10
    assert opened == 1  # a chunked answer ends cleanly, so its connection is reused
    assert reading.requests_per_minute == pytest.approx(50)


async def test_a_body_ended_by_the_close_costs_its_connection() -> None:
    head = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
    answer = [head, orjson.dumps(CHAT_ANSWER), b""]
    async with raw_server(lambda body: answer) as url, LLMClient(lean_config(url)) as client:
        texts = [(await client.chat(MESSAGES, max_tokens=4)).text for _ in range(2)]
        assert texts == ["5", "5"] and lean_transport(client).connections_opened == 2


# -- errors: the same classes as the aiohttp transport --------------------------------------------


async def test_rate_limit_429_headers_read_then_retried() -> None:
    async with serve_sim(SimConfig(tasks=(TASK,), requests_per_minute=120)) as server:
        await drain(server, 120)  # the server's bucket spent: the next request meets a 429
        async with LLMClient(lean_config(server.base_url)) as client:
            started = time.monotonic()
            answer = await client.chat(MESSAGES, max_tokens=4)
            waited = time.monotonic() - started
            stats = client.stats()
            reading = client.limiter.reading()
    assert answer.text and answer.attempts == 2
    assert stats.rate_limited == 1 and stats.retries == 1 and stats.errors == {"rate_limit": 1}
    assert reading.requests_per_minute == pytest.approx(120)  # x-ratelimit-* read from the 429
    assert 0.2 < waited < 2.0  # retry-after-ms (about 0.5 s) honoured
    assert server.stats()["by_status"] == {"200": 121, "429": 1}


@pytest.mark.parametrize(
    ("fault", "kind", "error_type"),
    [
        ("reset", "connection", ConnectionFailedError),
        ("malformed", "malformed", MalformedResponseError),
        ("hang", "timeout", EndpointTimeoutError),
    ],
)
async def test_faults_are_retried_and_bounded(
    fault: str, kind: str, error_type: type[LLMError]
) -> None:
    async with (
        serve_sim(SimConfig(tasks=(TASK,), hang_s=5.0, **{f"fault_{fault}": 1.0})) as server,
        LLMClient(lean_config(server.base_url, timeout_s=0.3)) as client,
    ):
        with pytest.raises(error_type) as caught:
            await client.chat(MESSAGES, max_tokens=4)
        stats = client.stats()
    assert caught.value.retryable and caught.value.attempts == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert stats.attempts == 3 and stats.errors == {kind: 3} and stats.final_errors == {kind: 1}
    assert server.stats()["faults"] == {fault: 3}


async def test_faults_at_a_rate_all_recover() -> None:
    retry = RetryPolicy(max_attempts=10, base_delay_s=0.001, max_delay_s=0.01)
    rates = {"fault_500": 0.06, "fault_503": 0.06, "fault_reset": 0.06, "fault_malformed": 0.06}
    async with (
        serve_sim(SimConfig(tasks=(TASK,), seed=3, **rates)) as server,
        LLMClient(lean_config(server.base_url, retry=retry, concurrency=16)) as client,
    ):
        texts = await asyncio.gather(*(client.chat(MESSAGES, max_tokens=4) for _ in range(80)))
        stats = client.stats()
        opened = lean_transport(client).connections_opened
    seen = server.stats()
    faults = sum(seen["faults"].values())
    assert len(texts) == 80 and stats.succeeded == 80 and stats.in_flight == 0
    assert faults > 0 and stats.retries == faults and stats.attempts == seen["requests"]
    # every reset costs its connection; the rest are reused
    assert opened <= 16 + seen["faults"].get("reset", 0)


async def test_not_http_and_early_close_are_connection_failures() -> None:
    cases: list[tuple[Callable[[bytes], list[bytes]], str]] = [
        (lambda body: [b"SSH-2.0-OpenSSH\r\n\r\n"], "illegal status line"),
        (lambda body: [b"HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n"], "bad Content-Length"),
        (lambda body: [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], "chunk"),
        (lambda body: [b"HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n"], "over 64 MiB"),
        (lambda body: [b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000], "Receive buffer too long"),
        (lambda body: [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", b""], "middle"),
        (lambda body: [b""], "before answering"),
    ]
    for answer, words in cases:
        async with raw_server(answer) as url, LLMClient(lean_config(url, timeout_s=2.0)) as client:
            with pytest.raises(ConnectionFailedError) as caught:
                await client.chat(MESSAGES, max_tokens=4)
            assert words in str(caught.value) and caught.value.attempts == 3
            assert caught.value.retryable and "'sim'" in str(caught.value)


async def test_refused_and_https_against_plain_http_fail_cleanly() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    async with LLMClient(lean_config(f"http://127.0.0.1:{closed_port}/v1")) as client:
        with pytest.raises(ConnectionFailedError, match="connection refused"):
            await client.chat(MESSAGES, max_tokens=4)
    async with serve_sim(SimConfig(tasks=(TASK,))) as server:
        https = server.base_url.replace("http://", "https://")
        async with LLMClient(lean_config(https, timeout_s=5.0)) as client:
            started = time.monotonic()
            with pytest.raises(ConnectionFailedError) as caught:
                await client.chat(MESSAGES, max_tokens=4)
            elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "TLS handshake failed" in message and "use http://" in message
    assert caught.value.attempts == 3 and elapsed < 2.0
    assert server.stats()["requests"] == 0


async def test_cancelled_call_drops_its_connection_and_the_next_one_works() -> None:
    async with (
        serve_sim(SimConfig(tasks=(TASK,), latency_base_s=0.5)) as server,
        LLMClient(lean_config(server.base_url, concurrency=1)) as client,
    ):
        call = asyncio.ensure_future(client.chat(MESSAGES, max_tokens=4))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        answer = await client.chat(MESSAGES, max_tokens=4)
        transport = lean_transport(client)
        assert answer.text and client.stats().cancelled == 1
        assert transport.connections_opened == 2  # the cancelled call's connection was dropped
        assert transport._open == 1 and len(transport._idle) == 1


async def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="transport must be one of aiohttp, lean"):
        lean_config("http://127.0.0.1:1/v1", transport="httpx")
    with pytest.raises(ConfigError, match="'x-extra' has a line break") as caught:
        bare_transport("http://127.0.0.1:1/v1", headers={"X-Extra": "sk-secret\r\nInjected: 1"})
    assert "sk-secret" not in str(caught.value)


# -- the response parser, fuzzed -------------------------------------------------------------


class ScriptedWire(asyncio.Transport):
    """A socket stand-in: once the request is written the server's `pieces` arrive one loop turn
    apart, then (with `eof`) it closes."""

    def __init__(self, connection: _Connection, pieces: list[bytes], eof: bool) -> None:
        super().__init__()
        self.connection, self.pieces, self.eof = connection, pieces, eof
        self.closing = self.kept = False
        connection.connection_made(self)

    def write(self, data: Any) -> None:
        self.task = asyncio.get_running_loop().create_task(self.serve())

    async def serve(self) -> None:
        for piece in self.pieces:
            await asyncio.sleep(0)
            if self.closing:
                return
            self.connection.data_received(piece)
        await asyncio.sleep(0)
        self.kept = self.connection in self.connection.owner._idle  # all bytes in, not closed
        if self.eof:
            self.abort()

    def abort(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.connection.connection_lost, None)


def exchange(pieces: list[bytes], eof: bool = True) -> tuple[RawResponse | LLMError, bool]:
    """What one POST gets when the server answers `pieces`, and whether its connection is pooled
    once they are in. A timeout, other errors, and any raised into the event loop are raised."""

    async def run() -> tuple[RawResponse | LLMError, bool]:
        transport = bare_transport("http://127.0.0.1:1/v1", timeout_s=2)
        wires: list[ScriptedWire] = []
        escaped: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: escaped.append(context))

        async def connect(deadline: float) -> _Connection:
            wires.append(ScriptedWire(_Connection(transport), pieces, eof))
            return wires[0].connection

        transport._connect = connect  # type: ignore[method-assign]
        try:
            result: RawResponse | LLMError = await transport.post("/chat/completions", b"{}")
        except ConnectionFailedError as error:
            result = error
        await wires[0].task
        await transport.aclose()
        assert escaped == []
        return result, wires[0].kept

    return asyncio.run(run())


def split(message: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(message), *(cut % (len(message) + 1) for cut in cuts)})
    return [message[start:end] for start, end in itertools.pairwise(points)]


TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~"
FRAMING = ("content-length", "transfer-encoding", "connection")
NAMES = st.text(TOKEN, min_size=1, max_size=10).filter(lambda name: name.lower() not in FRAMING)
VALUES = st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1), max_size=3).map(" ".join)  # fmt: skip
CUTS = st.lists(st.integers(0, 10_000), max_size=12)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, RawResponse, bool, str]:
    """A valid response framed by Content-Length, chunks (with extensions and trailers) or the
    close, maybe after a 100 Continue; what it reads as, whether its connection stays, framing."""
    status = draw(st.integers(200, 599).filter(lambda status: status not in (204, 304)))
    fields = draw(st.lists(st.tuples(NAMES, VALUES), max_size=5))
    body = draw(st.binary(max_size=1500))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    version = "1.0" if framing == "close" and draw(st.booleans()) else "1.1"
    if draw(st.booleans()):
        fields.append(("Connection", draw(st.sampled_from(["close", "keep-alive"]))))
    payload = body
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
        chunks = split(body, draw(CUTS)) if body else []
        sizes = [b"%x" % len(chunk) for chunk in chunks] + [b"0"]
        sizes = [size + draw(st.sampled_from([b"", b";ext", b';a=1;b="q"'])) for size in sizes]
        trailers = draw(st.lists(st.tuples(NAMES, VALUES), max_size=2))
        payload = b"".join(b"%s\r\n%s\r\n" % pair for pair in zip(sizes, chunks, strict=False))
        payload += sizes[-1] + b"\r\n" + "".join(f"{n}: {v}\r\n" for n, v in trailers).encode()
        payload += b"\r\n"
    head = f"HTTP/{version} {status} {draw(st.sampled_from(['OK', '', 'Some Reason']))}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
    if draw(st.booleans()):
        head = "HTTP/1.1 100 Continue\r\n\r\n" + head
    keys = dict.fromkeys(name.lower() for name, _ in fields)  # repeated fields read as one
    headers = {key: ", ".join(v for n, v in fields if n.lower() == key) for key in keys}
    kept = framing != "close" and headers.get("connection") != "close"
    return head.encode() + payload, RawResponse(status, headers, body), kept, framing


@given(responses(), CUTS, st.booleans(), st.binary(max_size=3))
@settings(max_examples=300, deadline=None)
def test_fuzz_any_split_of_a_valid_response_reads_as_the_whole(
    case: tuple[bytes, RawResponse, bool, str], cuts: list[int], close: bool, extra: bytes
) -> None:
    message, expected, kept, framing = case
    if framing != "close":  # bytes after the answer: its framing cannot be trusted to reuse it
        message, kept = message + extra, kept and not extra
    eof = close or framing == "close"  # a body framed by the close needs the close to end
    assert exchange([message], eof) == exchange(split(message, cuts), eof) == (expected, kept)


BAD_STATUS = [b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/2 200 OK", b"HTTP/1.1200 OK", b"SSH-2.0-OpenSSH_9.6", b" HTTP/1.1 200 OK", b"HTTP/1.1 200 O\x00K", b""]  # fmt: skip
BAD_FIELDS = [b"Bad Name: x", b"NoColon", b" folded: x", b"Name\x00: x", b"Name: x\x00y", b": x", b"Name : x", b"Content-Length: x1", b"Content-Length: 1, 2", b"Transfer-Encoding: gzip"]  # fmt: skip
BAD_CHUNK_SIZES = [b"zz", b"-1", b"", b"0x10", b"1" * 21, b" 5", b"5 5"]


@given(responses(), st.data(), CUTS)
@settings(max_examples=200, deadline=None)
def test_fuzz_malformed_status_lines_fields_and_chunk_sizes_fail_cleanly(
    case: tuple[bytes, RawResponse, bool, str], data: st.DataObject, cuts: list[int]
) -> None:
    lines = case[0].split(b"\r\n")
    edits = [(0, 1, BAD_STATUS), (1, 0, BAD_FIELDS)]  # (line, lines replaced, by one of)
    if case[3] == "chunked":  # the line after the final head is the first chunk size
        edits.append((lines.index(b"", lines.index(b"Transfer-Encoding: chunked")) + 1, 1, BAD_CHUNK_SIZES))  # fmt: skip
    at, replaced, choices = data.draw(st.sampled_from(edits))
    lines[at : at + replaced] = [data.draw(st.sampled_from(choices))]
    broken = b"\r\n".join(lines)
    for pieces in ([broken], split(broken, cuts)):
        result, kept = exchange(pieces)
        assert isinstance(result, ConnectionFailedError) and "not HTTP/1.1" in str(result)
        assert not kept


def mutate(case: tuple[bytes, RawResponse, bool, str], edits: list[tuple[int, bytes]]) -> bytes:
    message = case[0]
    for at, replacement in edits:  # one byte becomes 0 to 3: dropped, changed or added to
        at %= len(message) + 1
        message = message[:at] + replacement + message[at + 1 :]
    return message


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=3)), min_size=1, max_size=4)
MUTATED = st.builds(mutate, responses(), EDITS)


@given(MUTATED | st.binary(max_size=400) | st.binary(max_size=200).map(b"HTTP/1.1 ".__add__), CUTS)
@settings(max_examples=500, deadline=None)
def test_fuzz_mutated_responses_and_random_bytes_read_as_the_whole_or_fail_cleanly(
    message: bytes, cuts: list[int]
) -> None:
    whole, parts = exchange([message]), exchange(split(message, cuts))
    assert isinstance(whole[0], RawResponse | ConnectionFailedError)
    assert type(parts[0]) is type(whole[0]) and parts[1] == whole[1]
    if isinstance(whole[0], RawResponse):
        assert parts == whole
