"""`SimConfig`: every knob of the simulated LLM server, as one frozen value.

The defaults are those of the tests: no latency, no limits, no faults, any API key accepted,
every built-in task served. `ape-engine sim --help` documents the same knobs as flags, which is
why the serving knobs are flat fields here too; `server_settings()` gathers them for the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError
from engine.serving.quirks import Choices
from engine.serving.settings import ServerSettings
from engine.task.types import Task

__all__ = ["SIMULATOR_OWNED_BY", "SimConfig"]

#: What `/v1/models` says owns the model: a simulator says so, so that no one takes it for a model.
SIMULATOR_OWNED_BY = "ape-engine simulator (not a real model)"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What the simulator serves and how.

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
    earlier turns show bare outputs.

    Serving: the fields of `engine.serving.ServerSettings` of the same names (latency, limits,
    keys, quota, faults), seeded by `seed`. `debug_routes` serves GET ``/v1/sim/quality`` (the
    world's truth) and GET ``/v1/sim/stats`` (the server's counts).
    """

    tasks: tuple[Task | str, ...] = ()
    seed: int = 0
    task_seed: int | None = None
    model: str = "sim-1"
    # the world
    good_share: float = 0.1
    good_quality: tuple[float, float] = (0.7, 0.95)
    mediocre_quality: tuple[float, float] = (0.2, 0.6)
    bad_quality: tuple[float, float] = (0.0, 0.1)
    variant_noise: float = 0.04
    reflect_gain: float = 0.25
    reflect_noise: float = 0.08
    difficulty_spread: float = 1.5
    # serving
    latency_base_s: float = 0.0
    latency_per_token_s: float = 0.0
    latency_per_prompt_token_s: float = 0.0
    latency_jitter: float = 0.0
    prefix_cache_tokens: int = 0
    cached_token_cost: float = 0.1
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    per_key_limits: bool = False
    api_keys: tuple[str, ...] = ()
    quota_requests: int | None = None
    fault_500: float = 0.0
    fault_503: float = 0.0
    fault_hang: float = 0.0
    fault_reset: float = 0.0
    fault_malformed: float = 0.0
    hang_s: float = 600.0
    debug_routes: bool = False
    # real servers' behaviours (engine.serving.quirks): n > 1 refused or ignored, a reasoning
    # model's refusals (max_tokens, temperature, stop), a page that is not JSON
    choices: Choices = "many"
    reasoning: bool = False
    not_json: bool = False
    chatty: bool = False

    def __post_init__(self) -> None:
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
        self.server_settings()  # checks the serving knobs

    def server_settings(self) -> ServerSettings:
        """How the simulator serves: its serving knobs, under the name of a simulator."""
        return ServerSettings(
            model=self.model,
            seed=self.seed,
            latency_base_s=self.latency_base_s,
            latency_per_token_s=self.latency_per_token_s,
            latency_per_prompt_token_s=self.latency_per_prompt_token_s,
            latency_jitter=self.latency_jitter,
            prefix_cache_tokens=self.prefix_cache_tokens,
            cached_token_cost=self.cached_token_cost,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            per_key_limits=self.per_key_limits,
            api_keys=self.api_keys,
            quota_requests=self.quota_requests,
            fault_500=self.fault_500,
            fault_503=self.fault_503,
            fault_hang=self.fault_hang,
            fault_reset=self.fault_reset,
            fault_malformed=self.fault_malformed,
            hang_s=self.hang_s,
            stats_path="/v1/sim/stats" if self.debug_routes else None,
            kind="simulator",
            owned_by=SIMULATOR_OWNED_BY,
            choices=self.choices,
            reasoning=self.reasoning,
            not_json=self.not_json,
        )
