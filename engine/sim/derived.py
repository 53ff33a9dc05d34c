"""Instructions the simulated proposal model wrote from others, and what their quality is.

The world's assumptions (docs/design.md, "Simulator"), not measurements:

- a *variant* (a rewording, iterative APE) keeps its parent's quality up to normal noise of
  standard deviation `variant_noise`: a paraphrase neither knows nor fixes what went wrong;
- a *reflection* (a revision written after reading `w` of the parent's wrong answers) moves the
  parent's quality q by a gain of mean ``reflect_gain x (1 - q) x w / (w + 2)`` -- a share of
  the headroom, larger the more errors it saw, none when it saw none -- plus normal noise of
  standard deviation `reflect_noise`, larger than a paraphrase's: a revision changes more, and
  can make things worse (it may fit the few errors shown and lose the rest);
- a *merge* of two parents lands at the mean of their qualities plus the same noise as a
  reflection. The world has no strengths particular to examples (an example's difficulty is the
  same for every instruction), so two parents that win on different examples did so by chance,
  and a merge has nothing to combine.

Each derived quality is drawn once per text (seeded by the text) and fixed; a parent's quality
never changes once something was derived from it, so there are no cycles.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from engine.sim.config import SimConfig

__all__ = ["Derivation", "Derivations"]

_NORMAL = statistics.NormalDist()
Kind = Literal["variant", "reflect", "merge"]


@dataclass(frozen=True, slots=True)
class Derivation:
    kind: Kind
    parents: tuple[str, ...]  # their keys
    shown: int = 0  # wrong answers a reflection saw


class Derivations:
    """Which key was derived from which, and the quality that follows (first writer wins)."""

    def __init__(self, config: SimConfig, unit: Callable[..., float]) -> None:
        self._config = config
        self._unit = unit  # a uniform draw in (0, 1) hashed from its arguments and the seed
        self._derived: dict[str, Derivation] = {}
        self.fixed: set[str] = set()  # keys whose quality is known: never derived again

    def __contains__(self, key: str) -> bool:
        return key in self._derived

    def register(self, child: str, derivation: Derivation) -> bool:
        """Remember that `child` was derived as `derivation` says; False when its quality is
        known already or it copies a parent."""
        if child in derivation.parents or child in self.fixed or child in self._derived:
            return False
        self._derived[child] = derivation
        self.fixed.update(derivation.parents)
        return True

    def parents(self, key: str) -> tuple[str, ...]:
        found = self._derived.get(key)
        return found.parents if found else ()

    def quality(self, key: str, task: str, of: Callable[[str], float]) -> float | None:
        """The quality of a derived `key` on `task` (`of`: a parent's quality), None when it
        was not derived."""
        found = self._derived.get(key)
        if found is None:
            return None
        config = self._config
        noise = _NORMAL.inv_cdf(self._unit(found.kind, task, key))
        qualities = [of(parent) for parent in found.parents]
        if found.kind == "variant":
            value = qualities[0] + noise * config.variant_noise
        elif found.kind == "reflect":
            base = qualities[0]
            gain = config.reflect_gain * (1.0 - base) * found.shown / (found.shown + 2)
            value = base + gain + noise * config.reflect_noise
        else:
            value = sum(qualities) / len(qualities) + noise * config.reflect_noise
        return min(1.0, max(0.0, value))
