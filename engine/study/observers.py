"""The study's observers: callables that get every event after it is applied.

Observers are a list (httpx's event hooks, Optuna's callbacks): the journal writer is one
(synchronous, it never drops an event), and `EventBus.publish` is another, which fans events
out to subscribers that read at their own pace (the service's server-sent-event stream, tests):
each subscriber gets an anyio memory object stream with a bounded buffer; publishing never
waits, so a slow subscriber never blocks the study: when its buffer is full the event is
dropped and counted in `dropped`, and the subscriber catches up from the next snapshot.
Reference: anyio, "Streams" (memory object streams with a bounded buffer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from engine.study.events import Event

__all__ = ["EventBus", "Observer", "Subscription"]

Observer = Callable[[Event], None]


@dataclass(slots=True)
class Subscription:
    """One subscriber's end: iterate `receive` (``async for event in sub.receive``)."""

    receive: MemoryObjectReceiveStream[Event]
    send: MemoryObjectSendStream[Event]
    dropped: int = 0
    kinds: frozenset[str] | None = field(default=None)


class EventBus:
    """Fan-out of events to bounded subscriber streams; `publish` is an observer."""

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
