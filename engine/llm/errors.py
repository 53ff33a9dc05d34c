"""What went wrong with an LLM call, and whether trying again can help: the kinds every room
of the client raises or catches.

Retryable: 408, 409, 429 rate limit, 5xx, 529 overloaded, timeouts, connection failures and
bodies that are not the JSON expected. Final: every other 4xx (with the server's own message).
Some final errors stop the whole study at their first occurrence (`STOPS_STUDY`, `unfixable`):
a 401 or 403 (a key does not become valid on retry, and every other call would fail the same
way), a 404, 405 or 501 (a wrong URL or model: not an LLM server), and a 429 or 4xx that means
quota or billing (OpenAI ``insufficient_quota``). Which kind an error answer is, is read from
its status and body by `engine.llm.protocol.classification`.
"""

from __future__ import annotations

from typing import Any

from engine.errors import EndpointError

__all__ = [
    "STOPS_STUDY",
    "AuthenticationError",
    "ConnectionFailedError",
    "EndpointTimeoutError",
    "LLMError",
    "MalformedResponseError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestRejectedError",
    "ServerError",
    "server_gone",
    "unfixable",
]


class LLMError(EndpointError):
    """An `EndpointError` with its class (`kind`, used for counters) and the server's wait hint."""

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        code: str | None = None,
        endpoint: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status=status, retryable=retryable, code=code, endpoint=endpoint)
        self.retry_after_s = retry_after_s
        self.param: str | None = None  # the request field the server named, when it did
        self.attempts = 1  # set by the retry layer to the attempts made before giving up


class RateLimitError(LLMError):
    """429 rate limit: retry after the wait the server asked for."""

    kind = "rate_limit"


class QuotaExceededError(LLMError):
    """Quota or billing exhausted: final, and the study should stop rather than keep calling."""

    kind = "quota"


class ServerError(LLMError):
    """5xx, 529 overloaded, 408 or 409: the server could not answer this time."""

    kind = "server"


class RequestRejectedError(LLMError):
    """Any other 4xx: the request itself is wrong (model, parameters, key); final."""

    kind = "rejected"


class AuthenticationError(RequestRejectedError):
    """401 or 403: the key is missing, wrong, or not allowed this model; final, and the study
    stops rather than fail every call the same way."""

    kind = "auth"


#: Final errors after which no call of the study can succeed: the study stops at the first.
STOPS_STUDY: tuple[type[LLMError], ...] = (QuotaExceededError, AuthenticationError)


class EndpointTimeoutError(LLMError):
    kind = "timeout"


class ConnectionFailedError(LLMError):
    """The connection failed. `sent` is False when no connection could be made (refused, no
    route, a TLS handshake that failed): the request never left, so the server did nothing and
    nothing is paid; True when it broke after the request may have been written (a reset, a
    close mid-answer), so the server may have done the work."""

    kind = "connection"

    def __init__(self, message: str, *, sent: bool = True, **options: Any) -> None:
        super().__init__(message, **options)
        self.sent = sent


class MalformedResponseError(LLMError):
    kind = "malformed"


#: Answers no retry or wait can change: the key, the URL or the model is wrong.
_UNFIXABLE_STATUS = frozenset({401, 403, 404, 405, 501})


def unfixable(error: BaseException) -> bool:
    """Whether `error` says the endpoint cannot serve this study as configured (a wrong key,
    URL or model, a quota spent): the study should stop at once rather than count failures."""
    if isinstance(error, QuotaExceededError):
        return True
    status = getattr(error, "status", None)
    return isinstance(error, RequestRejectedError) and status in _UNFIXABLE_STATUS


def server_gone(error: BaseException) -> bool:
    """Whether `error` says the server is gone or stuck rather than that the request is wrong
    (no connection, a reset, a timeout): an endpoint pool sends such a call to another
    endpoint at once instead of retrying it on this one."""
    return isinstance(error, ConnectionFailedError | EndpointTimeoutError)
