"""The health of one endpoint of a pool: a circuit breaker.

A connection refused (nothing listens: the request never left, so nothing was paid) cools the
endpoint down at once; so does a quota error (for the longest pause). A connection that broke
under a call (a server killed or restarting) leaves the endpoint unproven at once: it takes one
call at a time (a probe) until one succeeds, so that a dead server does not take a round of
calls before the first refusal. Other failures that say the endpoint is unwell -- a timeout, a
5xx or 429 after the client's own retries, a malformed answer -- cool it after
`failure_threshold` in a row. A cool-down doubles with each repeat up to `max_cooldown_s`; once
it is over, the endpoint is unproven too (one probe at a time), and a probe that fails cools it
again. While an endpoint is unproven only its probe's outcome counts. A failure of the request
itself (a 400) says nothing about the endpoint.
"""

from __future__ import annotations

import math
from typing import Literal

from engine.llm.errors import ConnectionFailedError, LLMError, QuotaExceededError

__all__ = ["Breaker", "EndpointState", "endpoint_fault"]

EndpointState = Literal["ok", "cooled", "probing"]


def endpoint_fault(error: LLMError) -> bool:
    """Whether `error` says something about the endpoint rather than the request."""
    return error.retryable or isinstance(error, QuotaExceededError)


class Breaker:
    """One endpoint's breaker: cooled until a moment, or unproven (one probe call at a time),
    or ok. The pool counts here too the calls it sent elsewhere after this endpoint failed them
    (`failed_over`) and, of those, the calls that may have been served (`resent`)."""

    __slots__ = (
        "_cooldown_s",
        "_max_cooldown_s",
        "_threshold",
        "consecutive_failures",
        "cooldowns",
        "cooled_until",
        "failed_over",
        "probing",
        "resent",
        "suspect",
    )

    def __init__(self, failure_threshold: int, cooldown_s: float, max_cooldown_s: float) -> None:
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self.consecutive_failures = 0
        self.cooldowns = 0  # cool-downs since the last success: > 0 means unproven
        self.cooled_until = -math.inf
        self.probing = False  # a probe call is in flight
        self.suspect = False  # a connection broke: unproven, without a cool-down
        self.failed_over = 0
        self.resent = 0

    @property
    def unproven(self) -> bool:
        """Cooled down or broken since its last success: one call at a time until one succeeds."""
        return self.cooldowns > 0 or self.suspect

    def usable(self, now: float) -> bool:
        """Whether a call may go to the endpoint now."""
        return self.cooled_until <= now and not (self.unproven and self.probing)

    def state(self, now: float) -> EndpointState:
        if self.cooled_until > now:
            return "cooled"
        return "probing" if self.unproven else "ok"

    def succeeded(self, now: float) -> None:
        self.consecutive_failures = 0
        if self.cooled_until <= now:  # a call sent before a cool-down proves nothing
            self.cooldowns = 0
            self.suspect = False

    def failed(self, error: LLMError, probe: bool, now: float) -> None:
        """A call failed with `error` (`probe`: the call that tested the unproven endpoint)."""
        if not endpoint_fault(error) or self.cooled_until > now:
            return  # the request's fault, or cooling already (calls sent before it ended)
        if self.unproven and not probe:
            return  # a call sent before it was found out: only its probe's outcome counts
        self.consecutive_failures += 1
        refused = isinstance(error, ConnectionFailedError) and not error.sent
        quota = isinstance(error, QuotaExceededError)
        if probe or refused or quota or self.consecutive_failures >= self._threshold:
            pause = min(self._max_cooldown_s, self._cooldown_s * 2.0**self.cooldowns)
            self.cooled_until = now + (self._max_cooldown_s if quota else pause)
            self.cooldowns += 1
            self.consecutive_failures = 0
            self.suspect = False
        elif isinstance(error, ConnectionFailedError):
            self.suspect = True  # broken under a call: one probe before any more calls
