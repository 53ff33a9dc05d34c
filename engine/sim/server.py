"""The simulator served: the simulated `World` behind the OpenAI-compatible server of
`engine.serving`, with the world's debug route.

In process: ``async with serve_sim(config) as server`` gives ``server.base_url``
(``http://127.0.0.1:PORT/v1``), ``server.stats()`` and ``server.quality(instruction)``; in its
own process (for benchmarks, so its CPU is not the client's): ``with start_sim_process(config)
as base_url``, which runs ``python -m engine sim --port 0 ...`` and waits for the URL line it
prints when ready.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import orjson
from aiohttp import web

from engine.errors import ConfigError
from engine.serving.protocol import error_body
from engine.serving.server import OpenAIServer, listening
from engine.serving.settings import FAULT_KINDS
from engine.sim.config import SimConfig
from engine.sim.world import World
from engine.task import builtin_task_names, load_task
from engine.task.types import Task

__all__ = [
    "SimServer",
    "resolve_tasks",
    "serve_sim",
    "sim_arguments",
    "sim_process",
    "start_sim_process",
]

_JSON = "application/json"


def resolve_tasks(config: SimConfig) -> list[Task]:
    """The tasks a config names (every built-in task when it names none)."""
    seed = config.seed if config.task_seed is None else config.task_seed
    specs: Sequence[Task | str] = config.tasks or tuple(builtin_task_names())
    return [spec if isinstance(spec, Task) else load_task(spec, seed=seed) for spec in specs]


class SimServer(OpenAIServer):
    """The simulated OpenAI-compatible server: the world (by default the one `config` describes)
    behind `OpenAIServer`, and its truth in process (`quality`) and, with `debug_routes`, at
    GET ``/v1/sim/quality``. Start it with `serve_sim`."""

    def __init__(self, config: SimConfig, world: World | None = None) -> None:
        self.config = config
        self.world = world if world is not None else World(resolve_tasks(config), config)
        super().__init__(config, self.world)

    def quality(self, instruction: str, task: str | None = None) -> float:
        """The latent quality of `instruction` on `task` (the world's truth)."""
        return self.world.quality(instruction, task)

    def debug_routes(self) -> list[web.RouteDef]:
        routes = super().debug_routes()
        if self.config.debug_routes:
            routes.append(web.get("/v1/sim/quality", self._quality_route))
        return routes

    async def _quality_route(self, request: web.Request) -> web.StreamResponse:
        instruction = request.query.get("instruction")
        if instruction is None:
            message = "give ?instruction=TEXT (and optionally &task=NAME)"
            return web.Response(
                body=orjson.dumps(error_body(message, type="invalid_request_error")),
                status=400,
                content_type=_JSON,
            )
        task = request.query.get("task")
        try:
            quality = self.world.quality(instruction, task)
        except KeyError:
            names = ", ".join(state.task.name for state in self.world.tasks)
            body = error_body(f"no task {task!r} here; served: {names}", type="not_found_error")
            return web.Response(body=orjson.dumps(body), status=404, content_type=_JSON)
        name = self.world.tasks[self.world.task_index(task, self.world.key(instruction))].task.name
        return web.Response(
            body=orjson.dumps({"quality": quality, "task": name}), content_type=_JSON
        )


@contextlib.asynccontextmanager
async def serve_sim(
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    backend: World | None = None,
) -> AsyncIterator[SimServer]:
    """Run the simulator on `host`:`port` (0: a free port) for the duration of the block;
    `backend` is a world to serve instead of the one `config` describes."""
    async with listening(SimServer(config or SimConfig(), backend), host, port) as server:
        yield server


# -- in its own process --------------------------------------------------------------------------


def _pair(values: tuple[float, float]) -> str:
    return f"{values[0]},{values[1]}"


def sim_arguments(config: SimConfig) -> list[str]:
    """The `ape-engine sim` flags that reproduce `config` (its tasks must be names or paths)."""
    arguments: list[str] = []
    for spec in config.tasks:
        if not isinstance(spec, str):
            raise ConfigError(
                "sim: a simulator in its own process needs tasks as built-in names or file "
                f"paths, not the Task value {spec.name!r}"
            )
        arguments += ["--task", spec]
    if config.task_seed is not None:
        arguments += ["--task-seed", str(config.task_seed)]
    arguments += ["--seed", str(config.seed), "--model", config.model]
    arguments += ["--good-share", str(config.good_share)]
    arguments += ["--good-quality", _pair(config.good_quality)]
    arguments += ["--mediocre-quality", _pair(config.mediocre_quality)]
    arguments += ["--bad-quality", _pair(config.bad_quality)]
    arguments += ["--variant-noise", str(config.variant_noise)]
    arguments += ["--reflect-gain", str(config.reflect_gain)]
    arguments += ["--reflect-noise", str(config.reflect_noise)]
    arguments += ["--difficulty-spread", str(config.difficulty_spread)]
    arguments += ["--latency-base-ms", str(config.latency_base_s * 1000)]
    arguments += ["--latency-per-token-ms", str(config.latency_per_token_s * 1000)]
    arguments += ["--latency-per-prompt-token-ms", str(config.latency_per_prompt_token_s * 1000)]
    arguments += ["--prefix-cache-tokens", str(config.prefix_cache_tokens)]
    arguments += ["--cached-token-cost", str(config.cached_token_cost)]
    arguments += ["--latency-jitter", str(config.latency_jitter)]
    if config.requests_per_minute is not None:
        arguments += ["--rpm", str(config.requests_per_minute)]
    if config.tokens_per_minute is not None:
        arguments += ["--tpm", str(config.tokens_per_minute)]
    if config.per_key_limits:
        arguments.append("--per-key-limits")
    if config.quota_requests is not None:
        arguments += ["--quota-requests", str(config.quota_requests)]
    for kind in FAULT_KINDS:
        arguments += [f"--fault-{kind}", str(getattr(config, f"fault_{kind}"))]
    arguments += ["--hang-s", str(config.hang_s)]
    if config.debug_routes:
        arguments.append("--debug-routes")
    arguments += ["--choices", config.choices]
    arguments += ["--reasoning"] if config.reasoning else []
    arguments += ["--not-json"] if config.not_json else []
    arguments += ["--chatty"] if config.chatty else []
    return arguments


@contextlib.contextmanager
def start_sim_process(
    config: SimConfig | None = None, *, host: str = "127.0.0.1", timeout_s: float = 30.0
) -> Iterator[str]:
    """Run ``python -m engine sim --port 0`` with `config` in a child process and yield its base
    URL once it listens; the process is stopped when the block ends. API keys go through the
    environment (``--api-key-env``), never the command line."""
    with sim_process(config, host=host, timeout_s=timeout_s) as (url, _):
        yield url


@contextlib.contextmanager
def sim_process(
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = 30.0,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`start_sim_process`, yielding the process too (a benchmark kills a server mid-study;
    `port` lets it start one again where the dead one was)."""
    config = config or SimConfig()
    arguments = [sys.executable, "-m", "engine", "sim", "--host", host, "--port", str(port)]
    arguments += sim_arguments(config)
    environment = dict(os.environ)
    for index, api_key in enumerate(config.api_keys):
        name = f"APE_SIM_KEY_{index}"
        environment[name] = api_key
        arguments += ["--api-key-env", name]
    root = Path(__file__).resolve().parent.parent.parent
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            arguments,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=environment,
            cwd=str(root),
            text=True,
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], timeout_s)
            line = process.stdout.readline() if ready else ""
            url = line.strip().split()[-1] if line.strip() else ""
            if not url.startswith("http"):
                process.kill()
                process.wait()
                errors.seek(0)
                detail = errors.read().decode(errors="replace")[-2000:]
                raise ConfigError(f"sim: the simulator process did not start: {detail}")
            yield url, process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
