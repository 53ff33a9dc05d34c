"""Slow clients cannot hold the service's connections (slow loris): a request head not sent
whole within ``--header-timeout`` seconds, or a body not sent whole within ``--body-timeout``
(408), ends its connection, and the service answers others meanwhile. 400 real sockets against
a real `ape-engine serve` process, each sending a byte every half second."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
SLOW_SOCKETS = 400
TIMEOUT_S = 2.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[int]:
    """`ape-engine serve` with 2-second timeouts; yields its port."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "engine", "serve", "--port", "0"),
            *("--state-dir", str(tmp_path / "state"), "--no-resume"),
            *("--header-timeout", str(TIMEOUT_S), "--body-timeout", str(TIMEOUT_S)),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + process.stderr.read()
        yield int(line.split("127.0.0.1:")[1].split()[0])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    assert process.returncode == 0 and "Traceback" not in errors, errors[-3000:]


async def trickle(port: int, head: bytes, drip: bytes) -> tuple[float, bytes]:
    """Send `head`, then `drip` a byte every 0.5 s until the server closes the connection;
    (seconds it stayed open, what the server sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    writer.write(head)
    answer = b""
    try:
        for byte in drip:
            await writer.drain()
            try:
                answer += await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                writer.write(bytes([byte]))
                continue
            if reader.at_eof():
                break
        else:
            return 1e9, answer  # never closed
        answer += await asyncio.wait_for(reader.read(), 5)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - began, answer


async def health(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def test_slow_heads_and_slow_bodies_are_cut_off(service: int) -> None:
    heads = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    drip = b"X-Slow: " + b"a" * 200
    body_head = (
        b"POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500\r\n\r\n"
    )

    async def main() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]], bytes]:
        slow_heads = [trickle(service, heads, drip) for _ in range(SLOW_SOCKETS)]
        slow_bodies = [trickle(service, body_head, b"{" * 200) for _ in range(20)]
        running = asyncio.gather(asyncio.gather(*slow_heads), asyncio.gather(*slow_bodies))
        await asyncio.sleep(1.0)
        answered = await health(service)  # the service answers while they trickle
        cut_heads, cut_bodies = await running
        return cut_heads, cut_bodies, answered

    cut_heads, cut_bodies, answered = asyncio.run(main())
    assert answered.startswith(b"HTTP/1.1 200"), answered[:200]
    longest = max(seconds for seconds, _ in cut_heads)
    assert longest < TIMEOUT_S + 5, f"a slow head kept its connection {longest:.1f} s"
    for seconds, answer in cut_bodies:
        assert seconds < TIMEOUT_S + 5, f"a slow body kept its connection {seconds:.1f} s"
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b"not received whole within 2 s" in answer
