"""The preflight retries a transient error as the study's calls do: a flaky server (a 500, 502,
503 or 529 now and then, a timeout) is not refused before the study starts, and one that stays
down is refused with a message that says it is probably transient."""

from __future__ import annotations

import pytest

from engine.errors import EndpointError
from engine.llm import LLMClient
from engine.llm.probing.preflight import preflight
from tests.llm.test_client import FAST, Scripted, config, server

__all__ = ["server"]  # the fixture: the scripted server of test_client

pytestmark = pytest.mark.anyio

FAILED = (500, {}, {"error": {"message": "The server had an error", "type": "server_error"}})
OVERLOADED = (529, {}, {"error": {"message": "Overloaded", "type": "overloaded_error"}})


@pytest.mark.parametrize("failure", [FAILED, OVERLOADED])
async def test_a_flaky_server_passes_the_preflight_with_the_calls_retries(
    server: tuple[str, Scripted], failure: tuple[int, dict[str, str], dict[str, object]]
) -> None:
    url, state = server
    state.script = [failure] * (FAST.max_attempts - 1)  # the last attempt of a call succeeds
    async with LLMClient(config(url)) as client:
        checked = await preflight(client, "chat")
    assert checked.model == "m"
    calls = [path for path, _, _ in state.requests if path.endswith("/chat/completions")]
    assert len(calls) == FAST.max_attempts


async def test_a_server_that_stays_down_is_refused_as_probably_transient(
    server: tuple[str, Scripted],
) -> None:
    url, state = server
    state.script = [FAILED] * (FAST.max_attempts + 2)
    async with LLMClient(config(url)) as client:
        with pytest.raises(EndpointError) as raised:
            await preflight(client, "chat")
    message = str(raised.value)
    assert "500" in message and f"gave up after {FAST.max_attempts} attempts" in message
    assert "probably transient" in message and "try again" in message
