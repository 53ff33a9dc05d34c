"""No secret leaves the service. A request may not send the service's keys anywhere: it cannot
name a URL, an environment variable or a key file (a server that records what reaches it gets
nothing); and a web page the operator opens cannot drive the service -- a cross-site or
rebound request, or a body that is not JSON, is refused before it does anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from tests.security.conftest import SECRET, Capture
from tests.service.helpers import running_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def exfiltrating_bodies(url: str, variable: str, key_file: str) -> list[dict[str, Any]]:
    """Study bodies that would send a key of the service's to `url`."""
    study = {"task": "larger_number", "no_cache": True, "budget_scoring_calls": 10}
    return [
        {"config": {**study, "base_url": url, "api_key_env": variable}},
        {"config": {**study, "base_url": url, "api_key_env": "APE_ENGINE_TOKEN"}},
        {"config": {**study, "base_url": url, "api_key_env": "OPENAI_API_KEY"}},
        {"config": {**study, "proposal_base_url": url, "proposal_api_key_env": variable}},
        {"config": {**study, "base_url": url, "api_key_file": key_file}},
    ]


@pytest.mark.parametrize("case", range(5))
async def test_a_request_cannot_send_the_services_keys_anywhere(
    tmp_path: Path, capture: Capture, secret_env: str, case: int
) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(SECRET)
    body = exfiltrating_bodies(capture.url, secret_env, str(key_file))[case]
    async with running_service(tmp_path / "state") as service:
        status, answer = await service.call("POST", "/v1/studies", body)
        with anyio.move_on_after(0.5):  # what the study would send, it sends in this time
            await capture.arrived.wait()
        assert not capture.leaked(), capture.requests
        assert not capture.requests  # nothing reaches a URL a request names
        assert status == 400, answer
        assert answer["error"]["field"].startswith("config.")
        assert "endpoint" in answer["error"]["message"]  # it says how: pick one by name
        assert SECRET not in orjson.dumps(answer).decode()
        assert service.manager.entries == {}


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers) as response:
        text = await response.read()
        return response.status, orjson.loads(text) if text else None


BROWSER_REQUESTS = [
    # a page's form or fetch POST with text/plain needs no preflight: it would reach the API
    pytest.param({"Content-Type": "text/plain", "Origin": "http://evil.example"}, id="simple"),
    pytest.param({"Content-Type": "text/plain"}, id="text-plain"),
    pytest.param(
        {"Content-Type": "application/json", "Origin": "http://evil.example"}, id="cross-origin"
    ),
    # DNS rebinding: evil.example now resolves to 127.0.0.1; to the browser it is same-origin
    pytest.param(
        {
            "Content-Type": "text/plain",
            "Host": "evil.example:{port}",
            "Origin": "http://evil.example:{port}",
        },
        id="rebinding",
    ),
    pytest.param(
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, id="fetch-metadata"
    ),
    pytest.param({"Content-Type": "application/json", "Origin": "null"}, id="sandboxed"),
]


@pytest.mark.parametrize("headers", BROWSER_REQUESTS)
async def test_a_web_page_cannot_create_a_study(tmp_path: Path, headers: dict[str, str]) -> None:
    body = orjson.dumps({"config": {"task": "larger_number", "budget_scoring_calls": 5}})
    async with running_service(tmp_path) as service:
        port = service.url.rsplit(":", 1)[1]
        sent = {name: value.format(port=port) for name, value in headers.items()}
        status, answer = await post(service.session, service.url + "/v1/studies", body, sent)
        assert status in (403, 415), answer
        assert answer["error"]["field"] in ("host", "origin", "content-type")
        assert service.manager.entries == {}
        assert not list((tmp_path / "journals").iterdir())


async def test_a_rebound_name_reads_nothing(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        port = service.url.rsplit(":", 1)[1]
        for path in ("/v1/studies", "/openapi.json", "/health"):
            async with service.session.get(
                service.url + path, headers={"Host": f"evil.example:{port}"}
            ) as response:
                assert response.status == 403, path
        # the service's own names still work: its address and, on loopback, localhost
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            async with service.session.get(
                service.url + "/v1/studies", headers={"Host": host}
            ) as response:
                assert response.status == 200, host
