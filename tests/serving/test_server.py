"""`OpenAIServer` with a backend of its own, no simulator: it names itself a server, and the rooms
import only downwards (engine.local and engine.sim plug into engine.serving, never each other)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import aiohttp
import pytest

from engine.serving import Generation, GenerationRequest, Scored, ServerSettings, serve


class _Echo:
    """A backend that answers every prompt with the prompt itself."""

    def tokenize(self, text: str) -> list[str]:
        return text.split(" ")

    async def generate(self, request: GenerationRequest) -> Sequence[Generation]:
        return [Generation(request.prompt)] * request.n

    async def prompt_logprobs(self, prompt: str, top: int) -> Sequence[Scored]:
        return [Scored(token, -1.0) for token in self.tokenize(prompt)]


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_plain_backend_is_served_as_a_server_not_a_simulator() -> None:
    settings = ServerSettings(model="echo", requests_per_minute=1, owned_by="tests")
    async with serve(settings, _Echo()) as server, aiohttp.ClientSession() as session:
        url = f"{server.base_url}/completions"
        body = {"model": "echo", "prompt": "say this", "max_tokens": 4}
        async with session.post(url, json=body) as answer:
            assert answer.status == 200
            assert (await answer.json())["choices"][0]["text"] == "say this"
        async with session.post(url, json=body) as limited:
            assert limited.status == 429
            assert "(server)" in (await limited.json())["error"]["message"]
        async with session.post(url, json={**body, "model": "gpt-4"}) as missing:
            assert missing.status == 404
            assert "This server serves `echo`" in (await missing.json())["error"]["message"]
        async with session.get(f"{server.base_url}/models") as models:
            assert (await models.json())["data"][0]["owned_by"] == "tests"
        async with session.get(f"{server.base_url}/sim/stats") as stats:
            assert stats.status == 404  # no debug route unless stats_path is set
    assert server.stats()["by_status"] == {"200": 2, "429": 1, "404": 1}


@pytest.mark.parametrize(
    ("package", "never"),
    [
        ("engine.serving", ("engine.sim", "engine.local")),
        ("engine.local", ("engine.sim",)),
        ("engine.sim", ("engine.local",)),
    ],
)
def test_rooms_import_only_downwards(package: str, never: tuple[str, ...]) -> None:
    code = f"import sys, {package}; print(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [name for name in loaded if name.startswith(tuple(f"{n}." for n in never))]
    assert not set(never) & set(loaded)
