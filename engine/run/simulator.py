"""Starting the built-in simulated LLM server in-process for a study with no `--base-url`.

It binds a free loopback port, serves the study's task and seed, and is stopped when the study
ends. The simulator is looked up at run time (`engine.sim.serve_sim`, `engine.sim.SimConfig`),
and only the knobs its `SimConfig` has are passed.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from engine.errors import ConfigError
from engine.run.config import StudyConfig
from engine.task.types import Task

__all__ = ["start_simulator"]

_LATENCY_FIELDS = ("latency_base_s", "base_latency_s", "latency_s")


def sim_settings(task: Task, config: StudyConfig, fields: set[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if "tasks" in fields:
        settings["tasks"] = (task,)
    if "seed" in fields:
        settings["seed"] = config.seed
    if "debug_routes" in fields:
        settings["debug_routes"] = True
    for name in _LATENCY_FIELDS:
        if name in fields:
            settings[name] = config.sim_latency_s
            break
    return settings


@asynccontextmanager
async def start_simulator(task: Task, config: StudyConfig) -> AsyncIterator[str]:
    """Yield the base URL of a simulator serving `task` on 127.0.0.1."""
    try:
        sim: Any = importlib.import_module("engine.sim")
        sim_config_type = sim.SimConfig
        serve_sim = sim.serve_sim
    except (ImportError, AttributeError):
        raise ConfigError(
            "the built-in simulator is not available in this installation; give --base-url "
            "of an OpenAI-compatible server"
        ) from None
    fields = {f.name for f in dataclasses.fields(sim_config_type)}
    sim_config = sim_config_type(**sim_settings(task, config, fields))
    async with serve_sim(sim_config, host="127.0.0.1", port=0) as server:
        yield str(server.base_url)
