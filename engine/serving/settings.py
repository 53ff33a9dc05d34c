"""`ServerSettings`: how the OpenAI-compatible server serves, as one frozen value.

What it answers with is its `Backend`; these are the knobs around it. The defaults are those of
the tests: no latency, no limits, no faults, any API key accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError
from engine.serving.quirks import CHOICES, Choices

__all__ = ["FAULT_KINDS", "ServerSettings"]

#: Injected faults, in the order they are drawn: HTTP 500, HTTP 503, a hang past the client's
#: timeout, a reset connection, and a 200 answer whose JSON body is cut short.
FAULT_KINDS = ("500", "503", "hang", "reset", "malformed")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The serving knobs: `model` is the one model name served.

    Latency in seconds is ``(latency_base_s + latency_per_prompt_token_s * prompt +
    latency_per_token_s * tokens) * lognormal(0, latency_jitter)``, where a prompt token found in
    the prefix cache (`prefix_cache_tokens` > 0) counts `cached_token_cost` of an uncached one
    (`engine.serving.latency`). Limits are per minute (None: unlimited), per API key when
    `per_key_limits`. `api_keys`, when set, are the only keys accepted (401 otherwise).
    `quota_requests`, when set, is how many requests succeed before every call gets 429
    ``insufficient_quota``. Fault rates are probabilities per request; a hang lasts `hang_s`.
    `seed` seeds the fault and latency draws. `stats_path`, when set, is a debug route that
    answers `OpenAIServer.stats()` as JSON.

    The server calls itself `kind` in its messages ("server"; the simulator says "simulator", so
    that no one mistakes it for a model) and lists its model as owned by `owned_by`.
    """

    model: str
    seed: int = 0
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
    stats_path: str | None = None
    kind: str = "server"
    owned_by: str = "ape-engine"
    # real servers' behaviours to act out (engine.serving.quirks)
    choices: Choices = "many"
    reasoning: bool = False
    not_json: bool = False

    def __post_init__(self) -> None:
        for kind, rate in self.fault_rates():
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{self.kind}: fault_{kind} must lie in [0, 1], not {rate}")
        if self.fault_total() > 1.0:
            raise ConfigError(
                f"{self.kind}: the fault rates add up to {self.fault_total()}, above 1"
            )
        if self.prefix_cache_tokens < 0 or not 0.0 <= self.cached_token_cost <= 1.0:
            raise ConfigError(
                f"{self.kind}: prefix_cache_tokens must be >= 0 and cached_token_cost in [0, 1]"
            )
        for name in (
            "latency_base_s",
            "latency_per_token_s",
            "latency_per_prompt_token_s",
            "latency_jitter",
            "hang_s",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{self.kind}: {name} must not be negative, not {getattr(self, name)}"
                )
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{self.kind}: {name} must be positive (or unset), not {value}")
        if self.quota_requests is not None and self.quota_requests < 0:
            raise ConfigError(
                f"{self.kind}: quota_requests must be >= 0, not {self.quota_requests}"
            )
        if not self.model:
            raise ConfigError(f"{self.kind}: model must be a non-empty name")
        if self.choices not in CHOICES:
            raise ConfigError(f"{self.kind}: choices must be one of {', '.join(CHOICES)}")

    def fault_rates(self) -> tuple[tuple[str, float], ...]:
        return tuple((kind, getattr(self, f"fault_{kind}")) for kind in FAULT_KINDS)

    def fault_total(self) -> float:
        return sum(rate for _, rate in self.fault_rates())
