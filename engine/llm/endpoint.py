"""How to reach one OpenAI-compatible endpoint: URL, model, key source, limits, timeouts.

The API key is named, not stored: ``api_key_env`` (an environment variable) or ``api_key_file``
(a file holding only the key) is read when the client opens, into a `Secret` whose repr and str
are masked, so the key never reaches logs, errors, journals or the UI. Values of extra headers
are masked in the repr too (some providers put keys there).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError, role_setting, setting, setting_value
from engine.llm.retry import RetryPolicy

__all__ = ["PROTOCOLS", "TRANSPORTS", "EndpointConfig", "Secret", "load_api_key"]

TRANSPORTS = ("aiohttp", "lean")
#: "openai": /chat/completions and /completions; "anthropic": the Messages API (/messages)
PROTOCOLS = ("openai", "anthropic")


class Secret:
    """A string that does not show itself: `reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled or copied into journals")


@dataclass(frozen=True, slots=True, repr=False)
class EndpointConfig:
    """One endpoint. `base_url` ends where `/chat/completions` would be appended (usually
    ``.../v1``). Rates are per minute; None = not limited (or unknown, with `adaptive`)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    api_key_file: str | None = None
    api_key: Secret | None = None
    extra_headers: tuple[tuple[str, str], ...] | Mapping[str, str] = ()
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_s: float = 0.5  # below the provider's own burst, so network jitter never drains it
    concurrency: int = 64
    connect_timeout_s: float = 10.0
    timeout_s: float = 120.0
    adaptive: bool = False
    rate_limit_headers: bool = True  # re-sync the limiter from x-ratelimit-* headers
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # "aiohttp", or "lean": engine.llm.transport.lean, less memory per call in flight (opt-in)
    transport: str = "aiohttp"
    protocol: str = "openai"

    def __post_init__(self) -> None:
        if isinstance(self.extra_headers, Mapping):
            object.__setattr__(self, "extra_headers", tuple(self.extra_headers.items()))
        where = f"endpoint {self.name!r}"
        if not self.name:
            raise ConfigError("endpoint: name must not be empty")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}: base_url must start with http:// or https:// (got {self.base_url!r})"
            )
        if not self.model:
            raise ConfigError(f"{where}: model must not be empty")
        if self.concurrency < 1:
            raise ConfigError(f"{where}: concurrency must be >= 1 (got {self.concurrency})")
        for label, value in (
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
        ):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{where}: {label} must be positive or None (got {value!r})")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0 or self.burst_s <= 0:
            raise ConfigError(f"{where}: timeout_s, connect_timeout_s and burst_s must be > 0")
        if self.transport not in TRANSPORTS:
            raise ConfigError(
                f"{where}: transport must be one of {', '.join(TRANSPORTS)} "
                f"(got {self.transport!r})"
            )
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"{where}: protocol must be one of {', '.join(PROTOCOLS)} (got {self.protocol!r})"
            )
        if sum(x is not None for x in (self.api_key_env, self.api_key_file, self.api_key)) > 1:
            raise ConfigError(f"{where}: give at most one of api_key_env, api_key_file, api_key")

    def __repr__(self) -> str:
        headers = {name: "***" for name, _ in self.headers_items()}
        key = (
            f"api_key_env={self.api_key_env!r}"
            if self.api_key_env
            else f"api_key_file={self.api_key_file!r}"
            if self.api_key_file
            else ("api_key=Secret('********')" if self.api_key else "no key")
        )
        return (
            f"EndpointConfig(name={self.name!r}, base_url={self.base_url!r}, "
            f"model={self.model!r}, {key}, extra_headers={headers}, "
            f"requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute}, concurrency={self.concurrency}, "
            f"adaptive={self.adaptive})"
        )

    def headers_items(self) -> tuple[tuple[str, str], ...]:
        headers = self.extra_headers
        assert not isinstance(headers, Mapping)
        return headers


def _name_like(name: str) -> bool:
    return name.replace("_", "").isalnum() and name.isascii() and not name[:1].isdigit()


def load_api_key(config: EndpointConfig) -> Secret | None:
    """Read the key from where the config says; None when the endpoint needs none."""
    where = f"endpoint {config.name!r}"
    key_env = setting(role_setting(config.name, "api_key_env"))
    key_file = setting(role_setting(config.name, "api_key_file"))
    if config.api_key is not None:
        return config.api_key
    if config.api_key_env:
        name = config.api_key_env
        if not _name_like(name):  # a key pasted where the variable's name belongs
            raise ConfigError(
                f"{where}: {key_env} takes the name of an environment variable, and the value "
                "given is not a name (a key? it is not printed here); export the key in a "
                f"variable and give its name, or name a file with {key_file}"
            )
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"{where}: {setting_value(role_setting(config.name, 'api_key_env'), name)}: the "
                f"environment variable {name} is not set or empty; export it, or name a file with "
                f"{key_file}"
            )
        return Secret(value)
    if config.api_key_file:
        path = Path(config.api_key_file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"{where}: cannot read {key_file} {str(path)!r} ({error.strerror}); "
                "check the path and its permissions"
            ) from None
        if not value:
            raise ConfigError(f"{where}: {key_file} {str(path)!r} is empty")
        return Secret(value)
    return None
