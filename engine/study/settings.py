"""The settings a running study reads, grouped by who reads them, each declared once.

Each field carries its help, range and rules (`engine.decoding.setting`): the command line's
flags, the service's request type, the resume rules, /openapi.json and the settings table of
docs/guide.md are derived from these declarations (`engine.settings`). The study receives
`StudySettings` -- these groups and nothing else: no endpoint URL, key or path reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from engine.decoding import setting
from engine.llm.endpoint import TRANSPORTS
from engine.propose import PROPOSAL_MODES
from engine.search.factory import POLICIES

__all__ = [
    "BUDGET_NAMES",
    "MAX_CANDIDATES",
    "MAX_CONCURRENCY",
    "MAX_COUNT",
    "MAX_POOL",
    "BudgetLimits",
    "BudgetName",
    "FailureLimits",
    "Gate",
    "ParentChoice",
    "Price",
    "ProposalPlan",
    "SearchSettings",
    "StudySettings",
    "Throughput",
    "VariantKinds",
]

MAX_COUNT = 2**53  # the largest integer a JSON number (a double) holds exactly
MAX_CONCURRENCY = 100_000
MAX_CANDIDATES = 2000  # candidates a study holds: candidates x examples is the policy's memory
MAX_POOL = 10_000  # examples in one pool (demos, scoring, test)
MAX_INSTRUCTION_CHARS = 20_000

if TYPE_CHECKING:
    PolicyName = str
    TransportName = str
    ProposalMode = str
else:  # the choices of each registry, written once where the registry is
    PolicyName = Literal[tuple(POLICIES)]
    TransportName = Literal[TRANSPORTS]
    ProposalMode = Literal[PROPOSAL_MODES]

#: What a variant round writes: the paper's rewordings of a parent (resample), revisions that
#: read the parent's wrong answers (reflect), or both, the round's variants split between them.
VariantKinds = Literal["resample", "reflect", "both"]
#: Whose variants a round writes: the leaders by mean, or the best leader and parents sampled
#: from the per-example Pareto front (docs/design.md, "Proposals").
ParentChoice = Literal["leaders", "pareto"]
BudgetName = Literal["scoring_calls", "proposal_calls", "tokens", "usd", "seconds"]
#: The budgets, by the one name each keeps from flag (``--budget-scoring-calls``) to policy.
BUDGET_NAMES: tuple[BudgetName, ...] = (
    "scoring_calls",
    "proposal_calls",
    "tokens",
    "usd",
    "seconds",
)

#: USD per million tokens: a finite amount >= 0 (a typo of a few orders of magnitude is refused).
PerMillion = Annotated[float, msgspec.Meta(ge=0, le=1e6)]


class Group(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A group of settings: frozen, decoded by name, unknown names refused."""


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per million prompt (input) and completion (output) tokens; in JSON and TOML
    ``{"input": 0.5, "output": 1.5}`` (a price left out is 0). This one type decodes the
    prices of a TOML file, of a service request and of a journal header."""

    input_per_million: PerMillion = msgspec.field(default=0.0, name="input")
    output_per_million: PerMillion = msgspec.field(default=0.0, name="output")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1e6


_ADJUST = {"resume": True, "live": True}  # may change on resume and while the study runs


class SearchSettings(Group, frozen=True, kw_only=True):
    """What the scheduler is and how sure its pick must be; the pools it draws from."""

    policy: Annotated[PolicyName, setting("scheduler policy", defines=True)] = "paired"
    delta: Annotated[float, setting("error probability of the pick", gt=0, lt=1, defines=True)] = (
        0.05
    )
    epsilon: (
        Annotated[float, setting("tolerance of the pick (2 / pool size)", ge=0, lt=1, defines=True)]
        | None
    ) = None
    seed: Annotated[
        int, setting("seed of pools, proposals and policy", ge=0, le=MAX_COUNT, defines=True)
    ] = 0
    demo_size: (
        Annotated[
            int, setting("examples in the demonstration pool", ge=0, le=MAX_POOL, defines=True)
        ]
        | None
    ) = None
    scoring_size: (
        Annotated[
            int, setting("examples in the scoring pool (200)", ge=0, le=MAX_POOL, defines=True)
        ]
        | None
    ) = None
    test_size: (
        Annotated[int, setting("examples in the test pool (100)", ge=0, le=MAX_POOL, defines=True)]
        | None
    ) = None


class BudgetLimits(Group, frozen=True, kw_only=True):
    """Where the study stops; None is unlimited. Changeable while it runs."""

    scoring_calls: (
        Annotated[
            int,
            setting("scoring calls", ge=0, le=MAX_COUNT, aliases=("--budget-calls",), **_ADJUST),
        ]
        | None
    ) = None
    proposal_calls: (
        Annotated[int, setting("proposal calls", ge=0, le=MAX_COUNT, **_ADJUST)] | None
    ) = None
    tokens: Annotated[int, setting("tokens", ge=0, le=MAX_COUNT, **_ADJUST)] | None = None
    usd: Annotated[float, setting("dollars", ge=0, le=MAX_COUNT, **_ADJUST)] | None = None
    seconds: (
        Annotated[float, setting("wall-clock seconds", ge=0, le=MAX_COUNT, metavar="S", **_ADJUST)]
        | None
    ) = None
    prices: Annotated[
        dict[str, Price],
        setting(
            "USD per million tokens by model, beyond the built-in list (TOML: "
            '[prices."my-model"] input = 0.5  output = 1.5)',
            max_length=1000,
            flat="prices",
            flag="",
        ),
    ] = msgspec.field(default_factory=dict)

    def as_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in BUDGET_NAMES}


class Throughput(Group, frozen=True, kw_only=True):
    """How many calls the study keeps in flight, and how it sends them."""

    concurrency: Annotated[int, setting("calls in flight", ge=1, le=MAX_CONCURRENCY, **_ADJUST)] = (
        32
    )
    late_binding: Annotated[
        bool, setting("choose each pull only when its call can be sent (at the rate limit)")
    ] = True
    group_by_candidate: Annotated[
        bool,
        setting(
            "send the pulls chosen together candidate by candidate (prefix caches of the servers)"
        ),
    ] = True
    transport: Annotated[
        TransportName,
        setting(
            "HTTP client: aiohttp, or lean (HTTP/1.1, about half the memory per call)",
            owner="operator",
            why="the operator sets each endpoint's transport",
        ),
    ] = "aiohttp"


class ProposalPlan(Group, frozen=True, kw_only=True):
    """How many candidates come, when, how they are asked for, and how much of the scoring
    budget waits for them."""

    initial_candidates: Annotated[
        int,
        setting("first batch of proposed candidates (0: only your own)", ge=0, le=MAX_CANDIDATES),
    ] = 20
    candidates_per_call: Annotated[
        int, setting("candidates asked of each proposal call", ge=1, le=50)
    ] = 5
    demos_per_proposal: Annotated[
        int, setting("demonstrations shown to each proposal call", ge=1, le=100)
    ] = 5
    variant_rounds: Annotated[int, setting("rounds of leader variants", ge=0, le=100)] = 2
    variant_leaders: Annotated[int, setting("leaders varied in each round", ge=1, le=50)] = 3
    variants_per_leader: Annotated[int, setting("variants of each leader", ge=1, le=50)] = 3
    new_candidate_share: Annotated[
        float,
        setting("share of the scoring budget kept for new candidates", ge=0, lt=1, live=True),
    ] = 0.25
    max_candidates: Annotated[
        int, setting("most candidates a study holds", ge=1, le=MAX_CANDIDATES)
    ] = 200
    include_human: Annotated[bool, setting("also search over the task's human instruction")] = False
    template: Annotated[
        ProposalMode,
        setting("forward, or insert (completions with suffix)", flat="proposal_template"),
    ] = "forward"
    duplicate_similarity: Annotated[
        float,
        setting(
            "token-set Jaccard at which a proposal counts as a near copy", gt=0, le=1, metavar="J"
        ),
    ] = 0.9
    max_instruction_chars: Annotated[
        int, setting("longer proposals are rejected", ge=1, le=MAX_INSTRUCTION_CHARS)
    ] = 400
    variants: Annotated[
        VariantKinds,
        setting(
            "what a variant round writes: resample (rewordings, the paper's), reflect "
            "(revisions that read the parent's wrong answers), or both"
        ),
    ] = "resample"
    reflection_errors: Annotated[
        int,
        setting("wrong answers a reflection sees (and half as many right ones)", ge=1, le=50),
    ] = 4
    parents: Annotated[
        ParentChoice,
        setting("whose variants: the leaders, or parents from the per-example Pareto front"),
    ] = "leaders"
    merge: Annotated[
        bool, setting("each round also merges two parents that win on different examples")
    ] = False
    demo_search: Annotated[
        bool,
        setting(
            "also search the scoring demos: each variant round pairs the leader's instruction "
            "with demo sets of its own from the demo pool (random, diverse, and examples it "
            "answers right), raced as candidates",
            defines=True,
        ),
    ] = False
    demo_sets: Annotated[
        int,
        setting("demo sets a round proposes for its leader (the demo search)", ge=1, le=30),
    ] = 3

    def planned(self, user_candidates: int = 0) -> int:
        """The candidates the study plans: the first batch, every variant round (its merge and
        its demo sets included), the human instruction, the user's own (the scheduler shares
        its error probability among that many)."""
        per_round = (self.variant_leaders + int(self.merge)) * self.variants_per_leader
        per_round += self.demo_sets if self.demo_search else 0
        variants = self.variant_rounds * per_round
        planned = self.initial_candidates + variants + int(self.include_human) + user_candidates
        return max(1, min(planned, self.max_candidates))

    def calls_per_round(self) -> int:
        """Proposal calls of one variant round: one per parent, two when `both` splits a
        parent's variants between the kinds, and the merge."""
        split = self.variants == "both" and self.variants_per_leader > 1
        return self.variant_leaders * (2 if split else 1) + int(self.merge)


class FailureLimits(Group, frozen=True, kw_only=True):
    """A study stops when more calls failed for good than max(max_failures, max_failure_share
    x calls so far)."""

    max_failures: Annotated[int, setting("calls that failed for good", ge=0, le=MAX_COUNT)] = 20
    max_failure_share: Annotated[
        float, setting("share of the calls so far that failed for good", ge=0, lt=1)
    ] = 0.1


class Gate(Group, frozen=True, kw_only=True):
    """A pass or fail after the final evaluation, for a pipeline (CI): the winner's held-out
    score against a floor, and against a baseline instruction evaluated on the same test
    examples (`engine.study.gate`)."""

    fail_under: (
        Annotated[
            float,
            setting(
                "fail (exit 3) when the winner's held-out score is below this",
                ge=0,
                le=1,
                metavar="SCORE",
                resume=True,
            ),
        ]
        | None
    ) = None
    baseline: (
        Annotated[
            str,
            setting(
                "an instruction to beat (yours in production; on the command line, or a file "
                "holding it), evaluated on the same test examples: fail (exit 3) when the "
                "winner scores below it",
                min_length=1,
                max_length=MAX_INSTRUCTION_CHARS,
                metavar="INSTRUCTION|FILE",
                resume=True,
            ),
        ]
        | None
    ) = None


class StudySettings(Group, frozen=True, kw_only=True):
    """Everything the study itself reads."""

    search: SearchSettings = SearchSettings()
    budgets: BudgetLimits = BudgetLimits()
    throughput: Throughput = Throughput()
    proposals: ProposalPlan = ProposalPlan()
    failures: FailureLimits = FailureLimits()
    gate: Gate = Gate()
    answer_chars: int = 200  # of each model answer kept in the events (0: none)
    user_candidates: int = 0  # the user's own candidates, added before any proposal
