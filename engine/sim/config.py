"""`SimConfig`: every knob of the simulated LLM server, as one frozen value.

The defaults are those of the tests: no latency, no limits, no faults, any API key accepted,
every built-in task served. `ape-engine sim --help` documents the same knobs as flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError
from engine.task.types import Task

__all__ = ["FAULT_KINDS", "SimConfig"]

#: Injected faults, in the order they are drawn: HTTP 500, HTTP 503, a hang past the client's
#: timeout, a reset connection, and a 200 answer whose JSON body is cut short.
FAULT_KINDS = ("500", "503", "hang", "reset", "malformed")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What the simulator serves and how.

    World: `tasks` are built-in task names, task file paths or `Task` values (empty: every
    built-in task, generated with `task_seed`, or `seed` when that is None). Latent qualities
    are a mixture: a share `good_share` of instructions is drawn uniformly from `good_quality`,
    the rest from `mediocre_quality`; off-task proposals from `bad_quality`; a variant gets its
    parent's quality plus normal noise of standard deviation `variant_noise`. `difficulty_spread`
    is the spread (logistic scale) of example difficulties shared by all instructions.

    Serving: latency in seconds is ``(latency_base_s + latency_per_token_s * tokens) *
    lognormal(0, latency_jitter)``. Limits are per minute (None: unlimited), per API key when
    `per_key_limits`. `api_keys`, when set, are the only keys accepted (401 otherwise).
    `quota_requests`, when set, is how many requests succeed before every call gets 429
    ``insufficient_quota``. Fault rates are probabilities per request; a hang lasts `hang_s`.
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
    difficulty_spread: float = 1.5
    # serving
    latency_base_s: float = 0.0
    latency_per_token_s: float = 0.0
    latency_jitter: float = 0.0
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

    def __post_init__(self) -> None:
        for name in ("good_share", *(f"fault_{kind}" for kind in FAULT_KINDS)):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"sim: {name} must lie in [0, 1], not {value}")
        if self.fault_total() > 1.0:
            raise ConfigError(f"sim: the fault rates add up to {self.fault_total()}, above 1")
        for name in ("good_quality", "mediocre_quality", "bad_quality"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high <= 1.0:
                raise ConfigError(f"sim: {name} must be (low, high) with 0 <= low <= high <= 1")
        for name in (
            "latency_base_s",
            "latency_per_token_s",
            "latency_jitter",
            "variant_noise",
            "difficulty_spread",
            "hang_s",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim: {name} must not be negative, not {getattr(self, name)}")
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"sim: {name} must be positive (or unset), not {value}")
        if self.quota_requests is not None and self.quota_requests < 0:
            raise ConfigError(f"sim: quota_requests must be >= 0, not {self.quota_requests}")
        if not self.model:
            raise ConfigError("sim: model must be a non-empty name")

    def fault_rates(self) -> tuple[tuple[str, float], ...]:
        return tuple((kind, getattr(self, f"fault_{kind}")) for kind in FAULT_KINDS)

    def fault_total(self) -> float:
        return sum(rate for _, rate in self.fault_rates())
