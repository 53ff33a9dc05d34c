"""`SimConfig`: every knob of the simulated LLM server, as one frozen value.

The defaults are those of the tests: no latency, no limits, no faults, any API key accepted,
every built-in task served. The serving knobs are the server's own (`ServerSettings`), which the
simulator extends with its world's; `ape-engine sim --help` documents the same knobs as flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError
from engine.serving.settings import ServerSettings
from engine.task.types import Task

__all__ = ["SIMULATOR_OWNED_BY", "SimConfig"]

#: What `/v1/models` says owns the model: a simulator says so, so that no one takes it for a model.
SIMULATOR_OWNED_BY = "ape-engine simulator (not a real model)"


@dataclass(frozen=True, slots=True)
class SimConfig(ServerSettings):
    """What the simulator serves and how: the server's knobs (`engine.serving.ServerSettings`:
    latency, limits, keys, quota, faults, real servers' quirks, seeded by `seed`), under the
    name of a simulator, and the simulated world's.

    World: `tasks` are built-in task names, task file paths or `Task` values (empty: every
    built-in task, generated with `task_seed`, or `seed` when that is None). Latent qualities
    are a mixture: a share `good_share` of instructions is drawn uniformly from `good_quality`,
    the rest from `mediocre_quality`; off-task proposals from `bad_quality`; a variant gets its
    parent's quality plus normal noise of standard deviation `variant_noise`; a reflection that
    saw w wrong answers gets its parent's quality q plus a gain of mean `reflect_gain` x (1 - q)
    x w / (w + 2) and normal noise of standard deviation `reflect_noise`, a merge the mean of
    its parents' plus the same noise (`engine.sim.derived` says why). `difficulty_spread`
    is the spread (logistic scale) of example difficulties shared by all instructions.
    `chatty`: chat answers come the way small chat models write them, as a sentence around the
    output ('The output for "x" is y.'), unless a system message asks for the output only or
    earlier turns show bare outputs. `debug_routes` serves GET ``/v1/sim/quality`` (the world's
    truth) and GET ``/v1/sim/stats`` (the server's counts).
    """

    model: str = "sim-1"
    kind: str = "simulator"
    owned_by: str = SIMULATOR_OWNED_BY
    tasks: tuple[Task | str, ...] = ()
    task_seed: int | None = None
    good_share: float = 0.1
    good_quality: tuple[float, float] = (0.7, 0.95)
    mediocre_quality: tuple[float, float] = (0.2, 0.6)
    bad_quality: tuple[float, float] = (0.0, 0.1)
    variant_noise: float = 0.04
    reflect_gain: float = 0.25
    reflect_noise: float = 0.08
    difficulty_spread: float = 1.5
    debug_routes: bool = False
    chatty: bool = False

    def __post_init__(self) -> None:
        ServerSettings.__post_init__(self)  # the serving knobs
        if not 0.0 <= self.good_share <= 1.0:
            raise ConfigError(f"sim: good_share must lie in [0, 1], not {self.good_share}")
        for name in ("good_quality", "mediocre_quality", "bad_quality"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high <= 1.0:
                raise ConfigError(f"sim: {name} must be (low, high) with 0 <= low <= high <= 1")
        if not 0.0 <= self.reflect_gain <= 1.0:
            raise ConfigError(f"sim: reflect_gain must lie in [0, 1], not {self.reflect_gain}")
        for name in ("variant_noise", "reflect_noise", "difficulty_spread"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim: {name} must not be negative, not {getattr(self, name)}")
        if self.debug_routes and self.stats_path is None:
            object.__setattr__(self, "stats_path", "/v1/sim/stats")
