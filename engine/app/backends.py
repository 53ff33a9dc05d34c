"""The in-process server a study with no base URL runs against: the built-in simulator (the
study's task and seed, a free loopback port) or a local GGUF model run by llama.cpp. Either is
stopped when the study ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from engine.errors import setting
from engine.settings import BackendSettings
from engine.sim import SimConfig, serve_sim
from engine.task.types import Task

__all__ = ["in_process_name", "start_backend", "start_simulator"]


def in_process_name(backend: BackendSettings, seed: int) -> str:
    """What answers when there is no base URL (also the response cache's endpoint key)."""
    if backend.kind == "local":
        return f"local model {backend.local_model}"
    return f"simulator (seed {seed})"


@asynccontextmanager
async def start_simulator(task: Task, backend: BackendSettings, seed: int) -> AsyncIterator[str]:
    """Yield the base URL of a simulator serving `task` on 127.0.0.1."""
    sim_config = SimConfig(
        tasks=(task,), seed=seed, debug_routes=True, latency_base_s=backend.sim_latency_s
    )
    async with serve_sim(sim_config, host="127.0.0.1", port=0) as server:
        yield str(server.base_url)


@asynccontextmanager
async def _local(
    backend: BackendSettings, model: str, queue: int, say: Callable[[str], None]
) -> AsyncIterator[str]:
    from engine.local import LocalSettings, serve_local  # llama.cpp loads only when asked for

    settings = LocalSettings(
        model=backend.local_model, name=model, threads=backend.local_threads, queue=queue
    )
    async with serve_local(settings) as server:
        say(
            f"no {setting('base_url')} given: started the local model "
            f"{server.local.model.path.name} "
            f"(llama.cpp) as {model!r} on {server.base_url}"
        )
        yield server.base_url


@asynccontextmanager
async def _simulator(
    task: Task, backend: BackendSettings, seed: int, say: Callable[[str], None]
) -> AsyncIterator[str]:
    async with start_simulator(task, backend, seed) as base_url:
        say(
            f"no {setting('base_url')} given: started the built-in simulated LLM server (a "
            f"simulator, not a real model) on {base_url}"
        )
        yield base_url


def start_backend(
    task: Task,
    backend: BackendSettings,
    *,
    model: str,
    seed: int,
    concurrency: int,
    say: Callable[[str], None],
) -> AbstractAsyncContextManager[str]:
    """The in-process server `backend` names, as an async context yielding its URL: the
    simulator of `task` and `seed`, or the local model served as `model`, its queue room for
    the `concurrency` the study keeps in flight."""
    if backend.kind == "local":
        return _local(backend, model, max(64, 2 * concurrency), say)
    return _simulator(task, backend, seed, say)
