"""What the attacks of tests/security need: a server that records every request it gets (where
a leaked key would arrive), and a secret in the service's own environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import pytest
from aiohttp import web

SECRET = "sk-the-services-own-key-0123456789"


@dataclass
class Capture:
    """A loopback HTTP server that answers 404 and keeps what each request carried."""

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def leaked(self, secret: str = SECRET) -> bool:
        return any(secret in value for request in self.requests for value in request.values())


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    seen = Capture()

    async def record(request: web.Request) -> web.Response:
        seen.requests.append({"path": request.path, **dict(request.headers)})
        seen.arrived.set()
        return web.json_response({"error": {"message": "nothing here"}}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    seen.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield seen
    finally:
        await runner.cleanup()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """A key in the service's environment, under the names an attacker would try."""
    for name in ("APE_ENGINE_TOKEN", "OPENAI_API_KEY", "APE_TEST_SECRET"):
        monkeypatch.setenv(name, SECRET)
    return "APE_TEST_SECRET"
