"""The in-process server a study with no base URL runs against: the built-in simulator (the
study's task and seed, a free loopback port) or a local GGUF model run by llama.cpp. Either is
stopped when the study ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from engine.sim import SimConfig, serve_sim
from engine.study.config import StudyConfig
from engine.task.types import Task

__all__ = ["in_process_name", "start_backend", "start_simulator"]


def in_process_name(config: StudyConfig) -> str:
    """What answers when there is no base URL (also the response cache's endpoint key)."""
    if config.backend == "local":
        return f"local model {config.local_model}"
    return f"simulator (seed {config.seed})"


@asynccontextmanager
async def start_simulator(task: Task, config: StudyConfig) -> AsyncIterator[str]:
    """Yield the base URL of a simulator serving `task` on 127.0.0.1."""
    sim_config = SimConfig(
        tasks=(task,), seed=config.seed, debug_routes=True, latency_base_s=config.sim_latency_s
    )
    async with serve_sim(sim_config, host="127.0.0.1", port=0) as server:
        yield str(server.base_url)


@asynccontextmanager
async def _local(config: StudyConfig, say: Callable[[str], None]) -> AsyncIterator[str]:
    from engine.local import LocalSettings, serve_local  # llama.cpp loads only when asked for

    settings = LocalSettings(
        model=config.local_model,
        name=config.model,
        threads=config.local_threads,
        queue=max(64, 2 * config.concurrency),
    )
    async with serve_local(settings) as server:
        say(
            f"no --base-url given: started the local model {server.local.model.path.name} "
            f"(llama.cpp) as {config.model!r} on {server.base_url}"
        )
        yield server.base_url


@asynccontextmanager
async def _simulator(
    task: Task, config: StudyConfig, say: Callable[[str], None]
) -> AsyncIterator[str]:
    async with start_simulator(task, config) as base_url:
        say(
            f"no --base-url given: started the built-in simulated LLM server (a simulator, not "
            f"a real model) on {base_url}"
        )
        yield base_url


def start_backend(
    task: Task, config: StudyConfig, say: Callable[[str], None]
) -> AbstractAsyncContextManager[str]:
    """The in-process server `config.backend` names, as an async context yielding its URL."""
    if config.backend == "local":
        return _local(config, say)
    return _simulator(task, config, say)
