"""What happens in a study, as events, and the small bus that hands them to subscribers.

Events are frozen values (a candidate joined, a pull finished, an arm was eliminated, the leader
changed, a budget changed, an error, the study finished). Subscribers (the terminal UI, the
service's server-sent-event stream, tests) each get an anyio memory object stream with a bounded
buffer; the study publishes with `send_nowait`, so a slow subscriber never blocks it: when its
buffer is full the event is dropped and counted in `dropped`, and the subscriber is expected to
catch up from the next `StudySnapshot`. The journal is not a subscriber: the study writes it
directly so that no observation can be dropped (see `engine.study.journal`).
Reference: anyio, "Streams" (memory object streams with a bounded buffer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "ArmEliminated",
    "BudgetChanged",
    "CandidateAdded",
    "ErrorEvent",
    "Event",
    "EventBus",
    "LeaderChanged",
    "PullDone",
    "StudyFinished",
    "Subscription",
]


@dataclass(frozen=True, slots=True)
class CandidateAdded:
    arm: int
    instruction: str
    origin: str
    parent: int | None = None
    kind: str = "candidate_added"


@dataclass(frozen=True, slots=True)
class PullDone:
    arm: int
    example: int
    reward: float
    tokens: int
    latency_s: float
    cached: bool = False
    kind: str = "pull_done"


@dataclass(frozen=True, slots=True)
class ArmEliminated:
    arm: int
    upper: float
    kind: str = "arm_eliminated"


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    arm: int
    previous: int | None
    mean: float
    kind: str = "leader_changed"


@dataclass(frozen=True, slots=True)
class BudgetChanged:
    name: str
    limit: float | None
    previous: float | None
    kind: str = "budget_changed"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A call that failed for good (its pull went back to the pool), or a study-level error."""

    message: str
    error_kind: str
    failures: int
    kind: str = "error"


@dataclass(frozen=True, slots=True)
class StudyFinished:
    status: str
    reason: str
    winner: int | None
    kind: str = "finished"


Event = (
    CandidateAdded
    | PullDone
    | ArmEliminated
    | LeaderChanged
    | BudgetChanged
    | ErrorEvent
    | StudyFinished
)


@dataclass(slots=True)
class Subscription:
    """One subscriber's end: iterate `receive` (``async for event in sub.receive``)."""

    receive: MemoryObjectReceiveStream[Event]
    send: MemoryObjectSendStream[Event]
    dropped: int = 0
    kinds: frozenset[str] | None = field(default=None)


class EventBus:
    """Fan-out of events to bounded subscriber streams; publishing never waits."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def subscribe(
        self, *, buffer: int = 1024, kinds: frozenset[str] | set[str] | None = None
    ) -> Subscription:
        """A new subscriber with a buffer of `buffer` events; `kinds` filters by event kind."""
        if buffer < 1:
            raise ValueError("an event subscription needs a buffer of at least one event")
        send, receive = anyio.create_memory_object_stream[Event](buffer)
        subscription = Subscription(
            receive, send, kinds=frozenset(kinds) if kinds is not None else None
        )
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.send.close()

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscription in tuple(self._subscriptions):
            if subscription.kinds is not None and event.kind not in subscription.kinds:
                continue
            try:
                subscription.send.send_nowait(event)
            except anyio.WouldBlock:
                subscription.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscriptions.remove(subscription)

    def close(self) -> None:
        """End every subscription (their `async for` loops finish)."""
        for subscription in self._subscriptions:
            subscription.send.close()
        self._subscriptions.clear()
