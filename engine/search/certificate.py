"""What the data prove about a recommendation: the read-out every policy gives (`Certificate`),
from the pairwise bounds of `engine.search.differences`.

The bounds hold together with probability at least 1 - delta whichever policy chose the pulls
(docs/design.md, "Scheduler"), so any policy can say how close to the best its pick is proven
to be, and a study stopped by its budget can say so instead of naming an unproven winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from engine.search.differences import PairedBounds
    from engine.search.policy import BasePolicy

__all__ = ["Certificate", "certify", "more_calls"]


@dataclass(frozen=True, slots=True)
class Certificate:
    """The recommendation `arm` and what is proven about it, each with probability at least
    1 - `delta`: `proven` when it is within `epsilon` of the best arm (the stopping rule holds);
    otherwise it is within `supported` of the best (1.0: nothing is known yet), and `more_calls`
    is an estimate of the further scoring calls a proof within `epsilon` would take (0 when
    proven; an estimate from the differences seen so far, not a promise)."""

    arm: int | None
    proven: bool
    supported: float
    epsilon: float
    delta: float
    more_calls: int


def certify(policy: BasePolicy, arm: int | None) -> Certificate:
    """`arm`'s certificate from the pairwise bounds: the largest upper bound on another arm's
    lead over it, among the arms not proven worse than some arm."""
    if arm is None:
        return Certificate(None, False, 1.0, policy.epsilon, policy.delta, 0)
    pairs = policy.pairs
    pairs.sync_all()
    k = policy.num_arms
    rivals = policy.candidates() & ~pairs.worse(policy.candidates())
    rivals[arm] = False
    upper = pairs.upper(arm)
    supported = float(np.clip(upper[rivals].max(), 0.0, 1.0)) if rivals.any() else 0.0
    proven = supported <= policy.epsilon
    more = 0 if proven else more_calls(pairs, arm, rivals, policy.epsilon, policy.count[:k])
    return Certificate(arm, proven, supported, policy.epsilon, policy.delta, more)


def more_calls(
    pairs: PairedBounds,
    arm: int,
    rivals: NDArray[np.bool_],
    epsilon: float,
    count: NDArray[np.float64],
) -> int:
    """Further scoring calls until every open rival's bound against `arm` would be within
    epsilon, if the differences kept their mean and spread: an empirical-Bernstein width with
    the finite-population factor, or the hard bound, at each pair's next sizes."""
    n = pairs.n
    upper = pairs.upper(arm)
    open_rivals = np.flatnonzero(rivals & (upper > epsilon))
    if not len(open_rivals):
        return 0
    sizes = np.arange(1, n + 1, dtype=np.float64)
    log_term = float(pairs.threshold[arm])
    difference, spread, shared = pairs.difference(arm), pairs.spread(arm), pairs.shared(arm)
    needed = []
    for rival in open_rivals:
        left = (n - sizes) / n
        width = np.sqrt(2.0 * spread[rival] * log_term * left / sizes) + log_term * left / sizes
        hard = (difference[rival] * sizes + (n - sizes)) / n
        closes = (sizes >= shared[rival]) & (np.minimum(difference[rival] + width, hard) <= epsilon)
        needed.append(int(sizes[np.argmax(closes)]) if closes.any() else n)
    rival_calls = sum(
        max(0, size - int(count[r])) for size, r in zip(needed, open_rivals, strict=True)
    )
    return int(rival_calls + max(0, max(needed) - int(count[arm])))
