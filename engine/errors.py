"""The engine's one error hierarchy, and how a message names a setting.

Every message says what went wrong, where (file, line, field, endpoint) and what to do about it.
What to do names the setting as the user gives it where they gave it: a flag on the command
line (``--api-key-env``), a key in a TOML file (``api_key_env``), a keyword in Python
(``api_key_env=``). The code that reads a message's setting does not know which, so the entry
point says it once for everything under it (`naming`), and a message asks `setting(flat)` or
`setting_value(flat, value)`; without an entry point's word, settings are Python's keywords
(the service's JSON keys are the same names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = [
    "ConfigError",
    "DatasetError",
    "EndpointError",
    "EngineError",
    "JournalError",
    "Naming",
    "ScorerError",
    "naming",
    "role_setting",
    "setting",
    "setting_value",
    "setting_values",
]

_PLACEHOLDER = re.compile(r"[A-Z][A-Z_|.]*|-?[0-9.]+|true|false")  # shown bare


@dataclass(frozen=True, slots=True)
class Naming:
    """How the user names settings. `flags` maps a setting's flat name to its flag, for the
    settings a command line gives (or would); `in_file` names those it does not as a TOML
    file's keys (``name = "value"``); else they are Python keywords (``name="value"``)."""

    flags: Mapping[str, str] = field(default_factory=dict)
    in_file: bool = False

    def name(self, flat: str) -> str:
        return self.flags.get(flat, flat)

    def value(self, flat: str, value: str) -> str:
        """How the user gives setting `flat` the value `value` (a placeholder in capitals, a
        number or a boolean is shown as it is, other text quoted off the command line)."""
        flag = self.flags.get(flat)
        switch = value in ("true", "false")  # a flag of its own: --merge, --no-cache
        if flag is not None:
            return (
                (flag if value == "true" else f"--no-{flag[2:]}") if switch else f"{flag} {value}"
            )
        shown = value if _PLACEHOLDER.fullmatch(value) else json.dumps(value)
        if self.in_file:
            return f"{flat} = {shown}"
        return f"{flat}={value.title() if switch else shown}"

    def values(self, pairs: tuple[tuple[str, str], ...]) -> str:
        """Several settings given values: flags one after another, keys or keywords listed."""
        given = [self.value(flat, value) for flat, value in pairs]
        return " ".join(given) if all(flat in self.flags for flat, _ in pairs) else ", ".join(given)


_NAMING: ContextVar[Naming] = ContextVar("ape_engine_naming", default=Naming())  # noqa: B039


@contextmanager
def naming(how: Naming) -> Iterator[None]:
    """Messages made inside the block (on this thread, and in the tasks it starts) name settings
    as `how` does."""
    token = _NAMING.set(how)
    try:
        yield
    finally:
        _NAMING.reset(token)


def setting(flat: str) -> str:
    """Setting `flat` (its flat name: ``budget_scoring_calls``) as the user names it."""
    return _NAMING.get().name(flat)


def setting_value(flat: str, value: str) -> str:
    """Setting `flat` given `value`, as the user would write it (``--scoring exec``,
    ``scoring = "exec"``, ``scoring="exec"``)."""
    return _NAMING.get().value(flat, value)


def setting_values(*pairs: tuple[str, str]) -> str:
    """Settings given values, as the user would write them together (``--base-url URL --model
    NAME``, ``base_url=URL, model=NAME``)."""
    return _NAMING.get().values(pairs)


def role_setting(endpoint: str, name: str) -> str:
    """The flat name of a role's setting from an endpoint's name: the proposal and judge roles'
    settings are prefixed (``proposal_api_key_env``), the target's are not."""
    role = endpoint.partition("-")[0]
    return f"{role}_{name}" if role in ("proposal", "judge") else name


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(EngineError):
    """A setting is missing, malformed or contradicts another one."""


class DatasetError(EngineError):
    """A task file cannot be read as a task; the message names the file and line or key."""


class JournalError(EngineError):
    """A journal cannot be written, replayed, or belongs to another study."""


class ScorerError(EngineError):
    """The user's own code -- a metric or a custom scorer -- raised, or returned something other
    than a number in [0, 1]. It is not the endpoint's failure: the study stops at the first one,
    and the message names the example it was scoring."""


class EndpointError(EngineError):
    """An LLM endpoint answered with an error or could not be reached.

    `status` is the HTTP status (None for connection-level failures), `retryable` says whether the
    retry layer may try the call again, and `code` is the provider's error code when it sent one
    (for example OpenAI's ``insufficient_quota``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        code: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.code = code
        self.endpoint = endpoint
