"""The engine's one error hierarchy.

Every message says what went wrong, where (file, line, field, endpoint) and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetError",
    "EndpointError",
    "EngineError",
    "JournalError",
    "ScorerError",
]


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
