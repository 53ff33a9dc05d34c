"""The scheduler's interface and the bookkeeping every policy shares.

Best-arm identification over a finite pool (docs/design.md, "Scheduler"): each candidate instruction is
an arm; a pull scores one arm on one example of the scoring pool of `n` examples; an arm's true
score is its mean over the whole pool. Every arm walks the same seeded permutation of the pool
(common random numbers) without replacement, so a fully evaluated arm has its exact score.

Policies are pure and synchronous: `select(k)` hands out up to `k` pulls for free worker slots,
counting pulls already in flight; `observe` and `cancel` report what became of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.search.bounds import HypergeometricBounds, arm_delta, radius
from engine.search.certificate import Certificate, certify
from engine.search.differences import PairedBounds
from engine.search.ledger import ArmLedger, Pull

__all__ = ["ArmStats", "BasePolicy", "Certificate", "Policy", "Pull"]

ArmState = Literal["leader", "active", "eliminated", "complete", "dropped"]
Rewards = Literal["binary", "continuous"]
REWARDS: tuple[Rewards, ...] = ("binary", "continuous")


@dataclass(frozen=True, slots=True)
class ArmStats:
    arm: int
    mean: float
    count: int
    pending: int
    lower: float
    upper: float
    state: ArmState
    #: what the policy ranks the arms by for its leader: the mean, or for `paired` the mean
    #: adjusted for the examples the arm was scored on and shrunk by their number
    estimate: float = 0.5


class Policy(Protocol):
    """What the study asks of a scheduling policy (pure, synchronous, seeded). `BasePolicy`
    implements the bookkeeping; `engine.search.factory.make_policy` builds one by name."""

    def add_arm(self) -> int:
        """A new candidate entered the pool (at the start, or a variant while scoring runs);
        returns its arm number, the next integer from 0."""
        ...

    def select(self, k: int) -> Sequence[Pull]:
        """Called when up to `k` calls can be sent now: the pulls to send, counting those in
        flight; empty when nothing should be pulled (done, budget spent, or waiting for the
        results in flight)."""
        ...

    def open_pulls(self) -> int:
        """Called before each dispatch round: at most how many pulls `select` could hand out
        now (a cheap upper bound), so a round never reserves more calls than can be placed."""
        ...

    def observe(self, pull: Pull, reward: float) -> None:
        """A pull's reward in [0, 1] came back: one `select` handed out, or one replayed from a
        journal (never selected in this process). An example is observed once per arm."""
        ...

    def cancel(self, pull: Pull) -> None:
        """A selected pull will not be scored (the call failed for good, or was taken back
        unsent): its example goes back to the arm's pool."""
        ...

    def drop(self, arm: int) -> None:
        """The user dropped a candidate: it is never pulled or recommended again."""
        ...

    def set_budget(self, scoring_calls: int | None) -> None:
        """The scoring calls the policy may use in all (None: until its stopping rule),
        whenever the budget or the share kept for later candidates changes."""
        ...

    def stats(self, arm: int) -> ArmStats:
        """One arm's read-out (for the leaderboard, the leaders that get variants)."""
        ...

    def recommendation(self) -> int | None:
        """The arm the policy would pick now (None before any result)."""
        ...

    def budget_exhausted(self) -> bool:
        """The scoring calls it was given (`set_budget`) are all observed."""
        ...

    def done(self) -> bool:
        """The stopping rule holds, the budget is spent, or no arm can be pulled."""
        ...

    def certificate(self) -> Certificate:
        """What the data prove about the recommendation now (for the report and the displays,
        whenever they ask): whether the stopping rule holds, the smallest tolerance the
        pairwise bounds support, and an estimate of the further calls a proof would need."""
        ...

    @property
    def pulls_used(self) -> int:
        """Observations so far (replayed ones included)."""
        ...


class BasePolicy(ArmLedger):
    """Arms, without-replacement order, counts, pending pulls and bounds; subclasses choose."""

    name = "base"

    def __init__(
        self,
        *,
        n: int,
        seed: int,
        delta: float = 0.05,
        epsilon: float | None = None,
        scoring_calls: int | None = None,
        max_pending_per_arm: int = 32,
        initial_arms: int = 0,
        rewards: str = "continuous",
    ) -> None:
        if n < 1:
            raise ConfigError(f"the scoring pool needs at least one example, not n={n}")
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"delta must be in (0, 1), not {delta}")
        if max_pending_per_arm < 1:
            raise ConfigError(f"max_pending_per_arm must be at least 1, not {max_pending_per_arm}")
        if rewards not in REWARDS:
            raise ConfigError(f"rewards must be one of {', '.join(REWARDS)}, not {rewards!r}")
        self.rewards = rewards
        self._levels: list[int] = []  # each arm's grid level of the exact bounds
        self._exact = HypergeometricBounds.for_pool(n) if rewards == "binary" else None
        self.delta = delta
        self.epsilon = max(2.0 / n, 0.005) if epsilon is None else float(epsilon)
        self.scoring_calls = scoring_calls
        self.initial_arms = initial_arms
        super().__init__(n=n, seed=seed, max_pending=max_pending_per_arm)
        self._used = 0
        # every arm's reward per example and the bounds on differences of pairs of arms
        self.pairs = PairedBounds(n, self.order, self.epsilon, binary=rewards == "binary")

    # ---- arms and bookkeeping -------------------------------------------------------------

    def add_arm(self) -> int:
        arm = self._new_row()
        self.arm_deltas[arm] = float(
            arm_delta(arm, delta=self.delta, initial_arms=self.initial_arms)
        )
        if self._exact is not None:
            self._levels.append(self._exact.level(float(self.arm_deltas[arm])))
        self.pairs.add_arm(float(self.arm_deltas[arm]))
        self.lower[arm], self.upper[arm] = 0.0, 1.0
        self._on_add(arm)
        return arm

    def _on_add(self, arm: int) -> None:
        """Hook for policies that track per-arm schedule state."""

    @property
    def num_arms(self) -> int:
        return self._k

    @property
    def pulls_used(self) -> int:
        return self._used

    def set_budget(self, scoring_calls: int | None) -> None:
        if scoring_calls is not None and scoring_calls < 0:
            raise ConfigError(f"budget must be at least 0 scoring calls, not {scoring_calls}")
        self.scoring_calls = scoring_calls

    def budget_left(self) -> float:
        if self.scoring_calls is None:
            return float("inf")
        return float(self.scoring_calls - self._used - self.pending[: self._k].sum())

    def observe(self, pull: Pull, reward: float) -> None:
        arm, example = pull.arm, pull.example
        self._check(arm)
        if not 0 <= example < self.n:
            raise ConfigError(f"example {example} is outside the scoring pool 0..{self.n - 1}")
        if not 0.0 <= reward <= 1.0:
            raise ConfigError(f"reward must be in [0, 1], not {reward} (arm {arm})")
        if not self.taken[arm, example]:  # replayed: never selected in this process
            self.taken[arm, example] = True
        elif self.pending[arm] > 0:  # handed out by select
            self.pending[arm] -= 1
        else:
            raise ConfigError(f"arm {arm} already has an observation of example {example}")
        self._add_observation(arm, example, reward)
        self._used += 1
        self._after_observe(arm)

    def _add_observation(self, arm: int, example: int, reward: float) -> None:
        if self._exact is not None and reward not in (0.0, 1.0):
            raise ConfigError(
                f"reward {reward} for arm {arm} is not 0 or 1, but the policy was told the rewards "
                f"are binary (rewards='binary'); use rewards='continuous' for this metric"
            )
        self.total[arm] += reward
        self.total_sq[arm] += reward * reward
        self.count[arm] += 1
        self.pairs.observe(arm, example, reward)
        self.lower[arm], self.upper[arm] = self.arm_bounds(arm)

    def arm_bounds(self, arm: int, extra: int = 0) -> tuple[float, float]:
        """Bounds of one arm's pool mean; `extra` pulls in flight count as draws at the current
        mean (virtual counts, to choose pulls only: never to stop or eliminate)."""
        count = float(self.count[arm])
        if count == 0 and not extra:
            return 0.0, 1.0
        # an arm with only pulls in flight counts them at 1/2, so a first batch spreads out
        mean = float(self.total[arm]) / count if count else 0.5
        virtual = min(count + extra, float(self.n))
        if self._exact is not None:
            level = self._levels[arm]
            ones = round(mean * virtual) if extra else round(float(self.total[arm]))
            exact_low, exact_high = self._exact.bounds(int(ones), int(virtual), level)
            if not extra:
                return exact_low, exact_high
            half = (exact_high - exact_low) / 2.0
            return max(mean - half, 0.0), min(mean + half, 1.0)
        variance = max(float(self.total_sq[arm]) / count - mean * mean, 0.0) if count else 0.25
        width = float(
            radius(
                np.array([virtual]),
                np.array([variance]),
                n=self.n,
                arm_deltas=self.arm_deltas[arm : arm + 1],
            )[0]
        )
        hard_low = float(self.total[arm]) / self.n
        hard_high = (float(self.total[arm]) + self.n - count) / self.n
        return max(mean - width, hard_low), min(mean + width, hard_high)

    def _after_observe(self, arm: int) -> None:
        """Hook: eliminations and schedule updates."""

    def record(self, arm: int, example: int, reward: float) -> None:
        """Replay an observation from a journal (it was never selected in this process)."""
        self._check(arm)
        if not 0 <= example < self.n:
            raise ConfigError(f"example {example} is outside the scoring pool 0..{self.n - 1}")
        if self.taken[arm, example]:
            raise ConfigError(f"arm {arm} already has an observation of example {example}")
        if not 0.0 <= reward <= 1.0:
            raise ConfigError(f"reward must be in [0, 1], not {reward} (arm {arm})")
        self.taken[arm, example] = True
        self._add_observation(arm, example, reward)
        self._used += 1
        self._after_observe(arm)

    def drop(self, arm: int) -> None:
        self._check(arm)
        self.dropped[arm] = True

    # ---- read-outs --------------------------------------------------------------------------

    def bounds(self, *, virtual: bool = False) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lower and upper bounds of every arm's pool mean.

        With `virtual`, pulls in flight count in the width (mean unchanged, count + pending):
        used only to choose pulls, never to stop or eliminate.
        """
        k = self._k
        lower, upper = self.lower[:k].copy(), self.upper[:k].copy()
        if virtual:
            for arm in np.flatnonzero(self.pending[:k] > 0):
                lower[arm], upper[arm] = self.arm_bounds(int(arm), int(self.pending[arm]))
        return lower, upper

    def recommendation(self) -> int | None:
        """The best arm by lower bound among the arms that may be recommended."""
        if self._k == 0:
            return None
        lower, _ = self.bounds()
        lower = np.where(self.recommendable(), lower + 1e-12 * self.means(), -np.inf)
        if not np.isfinite(lower).any():
            return None
        return int(np.argmax(lower))

    def state(self, arm: int) -> ArmState:
        if self.dropped[arm]:
            return "dropped"
        if arm == self.recommendation():
            return "leader"
        if self.eliminated[arm]:
            return "eliminated"
        if self.count[arm] >= self.n:
            return "complete"
        return "active"

    def estimates(self, fresh: bool = True) -> NDArray[np.float64]:
        """What the arms are ranked by for the leader: their means (1/2 before any result)."""
        return self.means()

    def stats(self, arm: int) -> ArmStats:
        self._check(arm)
        lower, upper = self.bounds()
        return ArmStats(
            arm=arm,
            mean=float(self.means()[arm]),
            count=int(self.count[arm]),
            pending=int(self.pending[arm]),
            lower=float(lower[arm]),
            upper=float(upper[arm]),
            state=self.state(arm),
            estimate=float(self.estimates()[arm]),
        )

    def arms(self) -> list[ArmStats]:
        return [self.stats(arm) for arm in range(self._k)]

    def certificate(self) -> Certificate:
        """From the pairwise bounds: proven when they put the recommendation within epsilon
        of every arm they have not shown to be worse (valid whichever policy chose the pulls)."""
        return certify(self, self.recommendation())

    def budget_exhausted(self) -> bool:
        return self.scoring_calls is not None and self._used >= self.scoring_calls

    def done(self) -> bool:
        """The stopping rule holds, the budget is spent, or no arm can be pulled any more."""
        if self._k == 0:
            return False
        if self.budget_exhausted():
            return True
        return self._stop_rule() or not self._anything_left()

    def _anything_left(self) -> bool:
        live = self.live()
        k = self._k
        return bool((live & (self.count[:k] + self.pending[:k] < self.n)).any()) or bool(
            self.pending[:k].sum() > 0
        )

    def _stop_rule(self) -> bool:
        return False

    def select(self, k: int) -> list[Pull]:
        if k <= 0 or self._k == 0 or self.done():
            return []
        allowance = self.budget_left()
        k = int(min(k, allowance)) if np.isfinite(allowance) else k
        if k <= 0:
            return []
        return self._select(k)

    def _select(self, k: int) -> list[Pull]:
        raise NotImplementedError

    def open_pulls(self) -> int:
        if self._k == 0:
            return 0
        k = self._k
        live = self.live()
        room = np.minimum(
            self.max_pending - self.pending[:k], self.n - self.count[:k] - self.pending[:k]
        )
        total = float(np.clip(room, 0, None)[live].sum())
        return int(min(total, max(self.budget_left(), 0.0)))
