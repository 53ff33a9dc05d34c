"""The simulated OpenAI-compatible LLM server (docs/design.md, "Simulator"): a stand-in for a real model,
with a ground-truth world behind the server of `engine.serving` (its rate limits, latency and
faults). It is a simulator, and says so in its `/v1/models` answer.

    async with serve_sim(SimConfig(tasks=("sum",), seed=1)) as server:
        ...  # any OpenAI client at server.base_url, model "sim-1"
"""

from engine.sim.config import SimConfig
from engine.sim.server import (
    SimServer,
    resolve_tasks,
    serve_sim,
    sim_arguments,
    start_sim_process,
)
from engine.sim.tokens import count_tokens, tokenize
from engine.sim.world import World

__all__ = [
    "SimConfig",
    "SimServer",
    "World",
    "count_tokens",
    "resolve_tasks",
    "serve_sim",
    "sim_arguments",
    "start_sim_process",
    "tokenize",
]
