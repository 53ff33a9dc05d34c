"""Each arm's samples: the shared example order, counts and sums, pulls in flight.

The table under every policy (`engine.search.policy.BasePolicy`): which examples an arm was
scored on or has in flight, in the seeded order all arms walk without replacement; the sums its
mean and variance come from; which arms are eliminated or dropped. It decides nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError

__all__ = ["ArmLedger", "Pull"]


@dataclass(frozen=True, slots=True)
class Pull:
    """Score `arm` on example `example` (an index into the scoring pool)."""

    arm: int
    example: int


class ArmLedger:
    """Arms as rows: the examples each was pulled on along the shared order, its sums and
    count, its pulls in flight (at most `max_pending`), and whether it is out."""

    def __init__(self, *, n: int, seed: int, max_pending: int) -> None:
        self.n = n
        self.max_pending = max_pending
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(n)
        self._capacity = 0
        self._k = 0
        self.total: NDArray[Any] = np.zeros(0)
        self.total_sq: NDArray[Any] = np.zeros(0)
        self.count: NDArray[Any] = np.zeros(0)
        self.pending: NDArray[Any] = np.zeros(0)
        self.position: NDArray[Any] = np.zeros(0, dtype=np.int64)
        self.taken: NDArray[Any] = np.zeros((0, n), dtype=bool)
        self.eliminated: NDArray[Any] = np.zeros(0, dtype=bool)
        self.dropped: NDArray[Any] = np.zeros(0, dtype=bool)
        self.lower: NDArray[Any] = np.zeros(0)  # bounds of each arm's pool mean, kept current
        self.upper: NDArray[Any] = np.zeros(0)
        self.arm_deltas: NDArray[Any] = np.zeros(0)
        self.returned: list[deque[int]] = []

    def _new_row(self) -> int:
        """A row for a new arm; returns its number."""
        if self._k == self._capacity:
            self._grow()
        arm = self._k
        self._k += 1
        self.returned.append(deque())
        return arm

    def _grow(self) -> None:
        size = max(16, 2 * self._capacity)

        def extend(array: NDArray[Any]) -> NDArray[Any]:
            grown = np.zeros((size, *array.shape[1:]), dtype=array.dtype)
            grown[: self._capacity] = array[: self._capacity]
            return grown

        self.total, self.total_sq, self.count, self.pending = (
            extend(a) for a in (self.total, self.total_sq, self.count, self.pending)
        )
        self.position = extend(self.position)
        self.taken = extend(self.taken)
        self.eliminated = extend(self.eliminated)
        self.dropped = extend(self.dropped)
        self.lower, self.upper, self.arm_deltas = (
            extend(a) for a in (self.lower, self.upper, self.arm_deltas)
        )
        self._capacity = size

    def _check(self, arm: int) -> None:
        if not 0 <= arm < self._k:
            raise ConfigError(f"no arm {arm}; arms are 0..{self._k - 1}")

    def available(self, arm: int) -> int:
        """Examples this arm has not yet been pulled on (observed or in flight)."""
        return int(self.n - self.count[arm] - self.pending[arm])

    def _take(self, arm: int) -> Pull | None:
        """The arm's next example along the shared order, or None when it has none left."""
        queue = self.returned[arm]
        if queue:
            example = queue.popleft()
        else:
            position = int(self.position[arm])
            row = self.taken[arm]
            while position < self.n and row[self.order[position]]:
                position += 1
            if position >= self.n:
                self.position[arm] = position
                return None
            example = int(self.order[position])
            self.position[arm] = position + 1
        self.taken[arm, example] = True
        self.pending[arm] += 1
        return Pull(arm, example)

    def cancel(self, pull: Pull) -> None:
        """The call failed for good: the example goes back to the arm's pool, nothing is scored."""
        self._check(pull.arm)
        if self.pending[pull.arm] > 0:
            self.pending[pull.arm] -= 1
        self.taken[pull.arm, pull.example] = False
        self.returned[pull.arm].append(pull.example)

    def means(self) -> NDArray[np.float64]:
        k = self._k
        mean: NDArray[np.float64] = np.divide(
            self.total[:k], self.count[:k], out=np.full(k, 0.5), where=self.count[:k] > 0
        )
        return mean

    def variances(self) -> NDArray[np.float64]:
        k = self._k
        mean = self.means()
        second = np.divide(
            self.total_sq[:k], self.count[:k], out=np.full(k, 0.25), where=self.count[:k] > 0
        )
        variance: NDArray[np.float64] = np.maximum(second - mean * mean, 0.0)
        return variance

    def live(self) -> NDArray[np.bool_]:
        """Arms that may still receive pulls."""
        k = self._k
        live: NDArray[np.bool_] = ~self.eliminated[:k] & ~self.dropped[:k]
        return live

    def candidates(self) -> NDArray[np.bool_]:
        """Arms that may still be recommended (not dropped)."""
        candidates: NDArray[np.bool_] = ~self.dropped[: self._k]
        return candidates

    def recommendable(self) -> NDArray[np.bool_]:
        """The candidates a pick is made among: those scored at least once, where any is (the
        mean of an arm never scored is unknown, not the 0.5 `means` gives it)."""
        candidates = self.candidates()
        scored: NDArray[np.bool_] = candidates & (self.count[: self._k] > 0)
        return scored if scored.any() else candidates

    def pullable(self) -> NDArray[np.bool_]:
        """Every arm's `can_pull`, at once."""
        k = self._k
        mask: NDArray[np.bool_] = (
            self.live()
            & (self.pending[:k] < self.max_pending)
            & (self.count[:k] + self.pending[:k] < self.n)
        )
        return mask

    def can_pull(self, arm: int) -> bool:
        return bool(
            self.live()[arm] and self.pending[arm] < self.max_pending and self.available(arm) > 0
        )
