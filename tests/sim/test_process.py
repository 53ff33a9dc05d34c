"""The simulator in its own process, as benchmarks start it."""

from __future__ import annotations

import openai
import pytest

from engine.sim import SimConfig, start_sim_process

pytestmark = pytest.mark.integration


def test_start_sim_process_serves_until_the_block_ends() -> None:
    config = SimConfig(tasks=("sum",), seed=2, api_keys=("sk-process",), debug_routes=True)
    with start_sim_process(config) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(base_url=base_url, api_key="sk-process", max_retries=0)
        answer = client.chat.completions.create(
            model="sim-1",
            messages=[{"role": "user", "content": "Add the two numbers.\n\nInput: 1 2\nOutput:"}],
        )
        assert answer.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            client.with_options(api_key="sk-nope").models.list()
        client.close()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=2).models.list()
