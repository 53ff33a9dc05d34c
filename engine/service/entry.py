"""One study of the service: what the manager keeps of it while it runs and after it ended.

A `StudyEntry` holds the running study once it is open (the `StudyControl` the API's PATCH and
DELETE call), the `EventBus` observing it (the SSE stream subscribes to it), the limiters it took
from the `SharedEndpoints`, the requests that came before it opened, and how it ended. Before the
study opens, and after it failed to, the entry answers snapshots itself; a study that ended
before the service started (`StudyEntry.ended`) answers the last snapshot it left. An ended
study's snapshot carries its result (``extra.result``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from engine.llm.endpoint import EndpointConfig
from engine.llm.pacing.fair_share import FairShareLimiter, SharedEndpoints
from engine.llm.pacing.limiter import RateLimiter
from engine.service.launcher import PreparedStudy
from engine.service.state import StudyRecord
from engine.study.budgets import Budgets
from engine.study.observers import EventBus
from engine.study.result import StudyResult
from engine.study.snapshot import StudyControl, StudySnapshot

__all__ = ["StudyEntry"]


class StudyEntry:
    """One study of the service: the running study (once it is open), its event bus, the
    limiters it took from the shared endpoints, and how it ended."""

    def __init__(
        self,
        prepared: PreparedStudy | None,
        record: StudyRecord,
        endpoints: SharedEndpoints,
        say: Callable[[str], None],
    ) -> None:
        self.id = record.id
        self.prepared = prepared
        self.record = record
        self.final: StudySnapshot | None = None
        self.bus = EventBus()
        self.control: StudyControl | None = None
        self.attached = anyio.Event()
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()
        self.limiters: list[FairShareLimiter] = []
        self.limiters_by_name: dict[str, FairShareLimiter] = {}  # by the study's endpoint names
        self.rate_caps: dict[str, float | None] = {
            "requests_per_minute": None,
            "tokens_per_minute": None,
        }
        self.endpoint_caps: dict[str, dict[str, float | None]] = {}  # caps of one endpoint
        self.result: StudyResult | None = None
        self.error: str | None = None
        self.cancel_requested = False
        self.journal_failed = False  # it stopped on a journal write: resume it on restart
        self.stop_reason: str | None = None
        self.messages: deque[str] = deque(maxlen=50)
        self._endpoints = endpoints
        self._say = say

    @classmethod
    def ended(
        cls,
        record: StudyRecord,
        snapshot: StudySnapshot,
        endpoints: SharedEndpoints,
        say: Callable[[str], None],
    ) -> StudyEntry:
        """A study that ended before this service started: it answers `snapshot`."""
        entry = cls(None, record, endpoints, say)
        entry.final = snapshot
        entry.error = record.error
        entry.bus.close()
        entry.done.set()
        return entry

    def hold(self, study: StudyControl) -> None:
        """The study is open: requests that came before it now take effect."""
        self.control = study
        if self.cancel_requested:
            study.cancel()
        elif self.stop_reason is not None:
            study.cancel(self.stop_reason)  # a drain says why it stopped
        elif self.record.paused:
            study.pause()
        self.attached.set()

    # -- what the launcher calls -------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.messages.append(text)
        self._say(f"study {self.id}: {text}")

    def limiter_for(self, endpoint: EndpointConfig) -> RateLimiter:
        # no cap of its own: the study's concurrency is its capacity limiter
        limiter = self._endpoints.limiter_for(endpoint, concurrency=None)
        self.limiters.append(limiter)
        self.limiters_by_name[endpoint.name] = limiter
        return limiter

    def cap(self, control: StudyControl, limits: dict[str, Any]) -> None:
        """The study's own cap (a PATCH's rate_limits), on one endpoint or on every one;
        what a PATCH leaves out keeps the value it had."""
        limits = dict(limits)
        name = limits.pop("endpoint", None)
        if name is None:
            self.rate_caps.update(limits)
            self.endpoint_caps.clear()
            caps = self.rate_caps
        else:
            caps = self.endpoint_caps.setdefault(name, dict(self.rate_caps))
            caps.update(limits)
        control.set_rate_limits(
            requests_per_minute=caps["requests_per_minute"],
            tokens_per_minute=caps["tokens_per_minute"],
            endpoint=name,
        )

    def set_endpoint_limits(self, limits: dict[str, Any]) -> None:
        """The shared limit of the study's endpoints (a PATCH's endpoint_rate_limits), or of
        the one it names, for every study on them."""
        limits = dict(limits)
        name = limits.pop("endpoint", None)
        chosen = self.limiters if name is None else [self.limiters_by_name[name]]
        for endpoint in {id(lim.endpoint): lim.endpoint for lim in chosen}.values():
            endpoint.set_limits(limits)

    # -- read-outs ---------------------------------------------------------------------------------

    def snapshot(self) -> StudySnapshot:
        if self.final is not None:
            return self.final
        if self.control is not None:
            snapshot = self.control.snapshot()
            if self.error is not None and not snapshot.done:
                snapshot = dataclasses.replace(
                    snapshot, status="failed", done=True, message=self.error
                )
            if self.result is not None and snapshot.extra.result is None:
                extra = dataclasses.replace(snapshot.extra, result=self.result.to_json())
                snapshot = dataclasses.replace(snapshot, extra=extra)
            return snapshot
        return self._blank()

    def _blank(self) -> StudySnapshot:
        """The snapshot of a study that has not started (or failed before it could)."""
        assert self.prepared is not None  # an ended entry answers its final snapshot
        config = self.prepared.config
        if self.error is not None:
            status: Any = "failed"
        elif self.done.is_set():
            status = "cancelled"
        else:
            status = "starting"
        message = self.error or (self.messages[-1] if self.messages else "")
        return StudySnapshot.blank(
            self.id,
            task=self.prepared.task_name,
            policy=config.search.policy,
            status=status,
            reason=message,
            n=self.prepared.scoring_pool,
            concurrency=config.throughput.concurrency,
            budgets=Budgets(config.budgets.as_dict()),
            new_candidate_share=config.proposals.new_candidate_share,
        )

    def summary(self) -> dict[str, Any]:
        snapshot = self.snapshot()
        return {
            "id": self.id,
            "task": snapshot.task,
            "policy": snapshot.policy,
            "status": snapshot.status,
            "elapsed_s": snapshot.elapsed_s,
            "done": snapshot.done,
            "journal": self.record.journal,
            "message": (snapshot.done and snapshot.extra.reason) or snapshot.message,
        }

    def in_flight(self) -> int:
        return self.control.snapshot().throughput.in_flight if self.control is not None else 0

    # -- stopping --------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop for the service's sake (not the user's): the journal gets its result record."""
        self.stop_reason = reason
        if self.control is not None:
            self.control.cancel(reason)
        else:
            self.scope.cancel()  # not started yet: nothing is written before the study runs
