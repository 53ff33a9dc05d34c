"""Successive halving in rungs (Karnin et al. 2013, "Almost optimal exploration in multi-armed
bandits"; asynchronous rungs as in ASHA, Li et al. 2020, "A system for massively parallel
hyperparameter tuning").

Rung r asks for `target[r]` pulls of an arm, cumulative (earlier pulls count; every arm walks the
same example order, so arms in a rung are compared on the same examples). The arms present when
a rung closes (every one of them has completed it) are ranked by mean; the top 1/eta go on to
the next rung and the others are eliminated: with all arms at the start this is sequential
halving with cumulative means. With a budget, each rung gets an equal share of what is left for
the rungs still to come, split over its arms (Karnin et al.'s schedule); without one, rung r asks
for r0 * eta^r pulls. The first rung asks for 8-16 examples (fewer when the budget cannot pay
for that).

An arm that streams in after a rung closed climbs the rungs asynchronously (the ASHA rule): when
it completes a closed rung it goes on if its mean ranks in the top 1/eta of the means every arm
had when it completed that rung, and is eliminated otherwise. When the budget ends, the
recommendation is the best mean among the arms on the highest rung.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import ConfigError
from engine.search.policy import BasePolicy, Pull

__all__ = ["SuccessiveHalving"]


class SuccessiveHalving(BasePolicy):
    name = "halving"

    def __init__(self, *, eta: int = 3, first_rung: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if eta < 2:
            raise ConfigError(f"eta must be at least 2, not {eta}")
        if first_rung is not None and first_rung < 1:
            raise ConfigError(f"first_rung must be at least 1, not {first_rung}")
        self.eta = eta
        self._first_rung = first_rung
        self.rung = np.zeros(0, dtype=np.int64)  # the rung each arm works towards
        self.targets: list[int] = []  # cumulative pulls each rung asks for
        self.records: list[list[float]] = []  # means of the arms that completed each rung
        self.closed = 0  # rungs closed by the synchronous schedule

    def _on_add(self, arm: int) -> None:
        if len(self.rung) < len(self.count):
            grown = np.zeros(len(self.count), dtype=np.int64)
            grown[: len(self.rung)] = self.rung
            self.rung = grown
        self.rung[arm] = 0

    # ---- the schedule ----------------------------------------------------------------------

    def _rounds(self, arms: int) -> int:
        """Rungs needed to halve `arms` down to one."""
        return max(1, math.ceil(math.log(max(arms, 2)) / math.log(self.eta) - 1e-9))

    def _first_target(self) -> int:
        if self._first_rung is not None:
            return min(self.n, self._first_rung)
        if self.scoring_calls is None:
            return min(self.n, 12)
        arms = max(self.num_arms, self.initial_arms, 1)
        share = self.scoring_calls // (self._rounds(arms) * arms)
        # 8-16 examples, but never more than half the budget on the first rung
        r0 = min(max(share, 8), 16, max(1, self.scoring_calls // (2 * arms)))
        return int(min(self.n, r0))

    def _next_target(self, rung: int, survivors: int) -> int:
        """Pulls of rung `rung + 1`, decided when `rung` closes with `survivors` going on."""
        previous = self.targets[rung]
        if self.scoring_calls is None:
            return int(min(self.n, self.targets[0] * self.eta ** (rung + 1)))
        left = self.budget_left()
        share = left / (self._rounds(survivors) * max(survivors, 1))
        return int(min(self.n, previous + max(1, math.floor(share))))

    def _target(self, rung: int) -> int:
        while len(self.targets) <= rung:
            if not self.targets:
                self.targets.append(self._first_target())
            else:  # a streaming arm ran past the schedule: the no-budget growth
                self.targets.append(int(min(self.n, self.targets[-1] * self.eta)))
        return self.targets[rung]

    # ---- promotions ------------------------------------------------------------------------

    def _complete(self, arm: int) -> bool:
        return bool(self.count[arm] >= self._target(int(self.rung[arm])) and not self.pending[arm])

    def _close_rung(self) -> None:
        """Close the schedule's current rung once every live arm on it has completed it."""
        k = self.num_arms
        while True:
            rung = self.closed
            live = self.live()
            members = [a for a in range(k) if live[a] and self.rung[a] == rung]
            if not members or not all(self._complete(a) for a in members):
                return
            if self._target(rung) >= self.n or len(members) == 1:
                return  # the last rung: nothing to promote to
            means = self.means()
            for arm in members:
                self.records[rung].append(float(means[arm]))
            ranked = sorted(members, key=lambda a: -float(means[a]))
            survivors = max(1, math.ceil(len(members) / self.eta))
            for arm in ranked[survivors:]:
                self.eliminated[arm] = True
            for arm in ranked[:survivors]:
                self.rung[arm] = rung + 1
            if len(self.targets) <= rung + 1:
                self.targets.append(self._next_target(rung, survivors))
            self.closed = rung + 1

    def _promote_late(self, arm: int) -> None:
        """An arm that completed a rung the schedule already closed: the ASHA rule."""
        rung = int(self.rung[arm])
        while rung < self.closed and self._complete(arm):
            mean = float(self.means()[arm])
            record = self.records[rung]
            record.append(mean)
            keep = max(1, math.ceil(len(record) / self.eta))
            if mean < sorted(record, reverse=True)[keep - 1]:
                self.eliminated[arm] = True
                return
            rung += 1
            self.rung[arm] = rung

    def _grow_records(self) -> None:
        while len(self.records) <= len(self.targets):
            self.records.append([])

    def _after_observe(self, arm: int) -> None:
        self._grow_records()
        if int(self.rung[arm]) < self.closed:
            self._promote_late(arm)
        self._close_rung()

    # ---- selection -------------------------------------------------------------------------

    def _select(self, k: int) -> list[Pull]:
        self._after_observe_all()
        pulls: list[Pull] = []
        live = self.live()
        means = self.means()
        # lower rungs first, then the arms furthest from their target, then by mean
        order = sorted(
            (a for a in range(self.num_arms) if live[a]),
            key=lambda a: (int(self.rung[a]), self.count[a] + self.pending[a], -float(means[a])),
        )
        while len(pulls) < k:
            progressed = False
            for arm in order:
                need = self._target(int(self.rung[arm])) - int(self.count[arm] + self.pending[arm])
                if need <= 0 or not self.can_pull(arm):
                    continue
                pull = self._take(arm)
                if pull is None:
                    continue
                pulls.append(pull)
                progressed = True
                if len(pulls) >= k:
                    break
            if not progressed:
                break
        return pulls

    def _after_observe_all(self) -> None:
        self._grow_records()
        live = self.live()
        for arm in np.flatnonzero(
            live[: self.num_arms] & (self.rung[: self.num_arms] < self.closed)
        ):
            if not self.eliminated[arm]:
                self._promote_late(int(arm))
        self._close_rung()

    def _anything_left(self) -> bool:
        k = self.num_arms
        if self.pending[:k].sum() > 0:
            return True
        live = self.live()
        return any(
            live[a] and self.count[a] < min(self._target(int(self.rung[a])), self.n)
            for a in range(k)
        )

    def recommendation(self) -> int | None:
        if self.num_arms == 0:
            return None
        candidates = self.candidates() & ~self.eliminated[: self.num_arms]
        if not candidates.any():
            candidates = self.candidates()
        if not candidates.any():
            return None
        top = int(np.max(np.where(candidates, self.rung[: self.num_arms], -1)))
        eligible = candidates & (self.rung[: self.num_arms] == top)
        return int(np.argmax(np.where(eligible, self.means(), -np.inf)))
