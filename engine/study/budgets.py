"""Budgets of a study: what it has spent and the limits it stops at.

Five budgets, each optional and changeable while the study runs (the UI's keys and the service's
PATCH route): scoring calls, proposal calls, total tokens, dollars and wall-clock seconds. The
study stops at the first one reached. Dollars come from a per-model price table (USD per million
prompt and completion tokens) that users extend in their config; a dollar budget on a model with
no price is refused before the first call, never silently counted as free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from engine.decoding import Invalid, convert
from engine.errors import ConfigError
from engine.study.settings import BUDGET_NAMES, BudgetLimits, BudgetName, Price

__all__ = [
    "BUDGET_NAMES",
    "DEFAULT_PRICES",
    "BudgetName",
    "BudgetRow",
    "Budgets",
    "Price",
    "PriceTable",
    "Spend",
]


#: List prices (USD per 1M tokens) of common models; extend or override with `[prices]` in the
#: config. The simulator is free.
DEFAULT_PRICES: dict[str, Price] = {
    "sim-1": Price(0.0, 0.0),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.00),
    "davinci-002": Price(2.00, 2.00),
    "babbage-002": Price(0.40, 0.40),
}


class PriceTable:
    """Model name -> `Price`. A model the table does not know costs nothing but is reported by
    `unknown()` so the study can say so (and refuse a dollar budget)."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES)
        if prices:
            self._prices.update(prices)

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def price(self, model: str) -> Price | None:
        return self._prices.get(model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self._prices.get(model)
        return 0.0 if price is None else price.cost(prompt_tokens, completion_tokens)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """Spent and limit of one budget (limit None = unlimited)."""

    name: BudgetName
    spent: float
    limit: float | None


@dataclass(slots=True)
class Spend:
    """What a study has paid for, across resumes (the study owns the one instance).

    Calls answered from the response cache are counted in `cached_calls` and cost nothing.
    `evaluation_calls` are the final held-out evaluation, outside the scoring budget.
    `proposal_tokens` and `proposal_usd` are the proposal calls' part of `tokens` and `usd`.
    """

    scoring_calls: int = 0
    proposal_calls: int = 0
    evaluation_calls: int = 0
    tokens: int = 0
    usd: float = 0.0
    seconds: float = 0.0
    cached_calls: int = 0
    failed_calls: int = 0
    proposal_tokens: int = 0
    proposal_usd: float = 0.0

    def value(self, name: BudgetName) -> float:
        return float(getattr(self, name))

    def add_call(
        self,
        kind: Literal["scoring", "proposal", "evaluation"],
        *,
        prompt_tokens: int,
        completion_tokens: int,
        usd: float,
        cached: bool = False,
    ) -> None:
        if kind == "scoring":
            self.scoring_calls += 1
        elif kind == "proposal":
            self.proposal_calls += 1
        else:
            self.evaluation_calls += 1
        if cached:
            self.cached_calls += 1
            return
        self.tokens += prompt_tokens + completion_tokens
        self.usd += usd

    def to_json(self) -> dict[str, float | int]:
        return {
            "scoring_calls": self.scoring_calls,
            "proposal_calls": self.proposal_calls,
            "evaluation_calls": self.evaluation_calls,
            "tokens": self.tokens,
            "usd": round(self.usd, 6),
            "seconds": round(self.seconds, 3),
            "cached_calls": self.cached_calls,
            "failed_calls": self.failed_calls,
            "proposal_tokens": self.proposal_tokens,
            "proposal_usd": round(self.proposal_usd, 6),
        }

    def proposal_share(self) -> dict[str, float]:
        """The proposal calls' share of the calls made (scoring and proposal), of the tokens
        and of the dollars spent (0 where nothing was spent)."""
        calls = self.scoring_calls + self.proposal_calls
        return {
            "calls": round(self.proposal_calls / calls, 4) if calls else 0.0,
            "tokens": round(self.proposal_tokens / self.tokens, 4) if self.tokens else 0.0,
            "usd": round(self.proposal_usd / self.usd, 4) if self.usd else 0.0,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Spend:
        spend = cls()
        for name in (
            "scoring_calls",
            "proposal_calls",
            "evaluation_calls",
            "tokens",
            "cached_calls",
            "failed_calls",
            "proposal_tokens",
        ):
            setattr(spend, name, int(cast(int, data.get(name, 0))))
        spend.usd = float(cast(float, data.get("usd", 0.0)))
        spend.proposal_usd = float(cast(float, data.get("proposal_usd", 0.0)))
        spend.seconds = float(cast(float, data.get("seconds", 0.0)))
        return spend


def check_limit(name: str, limit: float | None) -> float | None:
    """One budget limit as its field declares it (`engine.study.settings.BudgetLimits`: None
    = unlimited), checked where a live change enters; a `ConfigError` names it."""
    if name not in BUDGET_NAMES:
        raise ConfigError(f"unknown budget {name!r}; the budgets are {', '.join(BUDGET_NAMES)}")
    try:
        value = convert({name: limit}, BudgetLimits)
    except Invalid as error:
        raise ConfigError(f"budget {error}") from None
    checked: float | None = getattr(value, name)
    return None if checked is None else float(checked)


@dataclass(slots=True)
class Budgets:
    """The limits, changeable live (each checked where it entered). `reached(spend)` names the
    first budget spent, or None -- all but the scoring calls, which the policy owns: it counts
    the pulls in flight against them (`engine.study.study.Study.set_budget` tells it)."""

    limits: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.limits = {name: self.limits.get(name) for name in BUDGET_NAMES}

    def set(self, name: str, limit: float | None) -> float | None:
        """Change one limit; returns the old one."""
        old = self.limits[name]
        self.limits[name] = limit
        return old

    def limit(self, name: BudgetName) -> float | None:
        return self.limits[name]

    def reached(self, spend: Spend, *, seconds: float | None = None) -> BudgetName | None:
        """The first budget spent; `seconds` is the running time now, when it is ahead of the
        last recorded in `spend`."""
        for name in BUDGET_NAMES:
            if name == "scoring_calls":
                continue  # the policy's
            limit = self.limits[name]
            value = spend.value(name)
            if name == "seconds" and seconds is not None:
                value = max(value, seconds)
            if limit is not None and value >= limit:
                return name
        return None

    def allows_proposal_call(self, spend: Spend, in_flight: int) -> bool:
        limit = self.limits["proposal_calls"]
        if limit is not None and spend.proposal_calls + in_flight >= limit:
            return False
        return self.reached(spend) is None

    def rows(self, spend: Spend, *, seconds: float | None = None) -> tuple[BudgetRow, ...]:
        return tuple(
            BudgetRow(
                name,
                seconds if name == "seconds" and seconds is not None else spend.value(name),
                self.limits[name],
            )
            for name in BUDGET_NAMES
        )
