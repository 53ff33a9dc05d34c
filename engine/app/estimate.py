"""What a study will cost, said before its first call: the worst case and the expected spend.

Memory is the worst case too: the examples the study keeps, the policy's table of candidates x
scoring examples, the candidates' texts and answers, and the calls in flight (see `_memory_mb`);
`ape-engine serve` refuses a study whose worst case is over its operator's limit.

Worst case = full evaluation: every candidate the study may hold (initial batch plus every
variant round) scored on the whole scoring pool, plus the proposal calls and the final
evaluation on the test pool. Expected = the worst case times the cost ratio each policy reached
in the scheduler's simulation (docs/design.md, "Scheduler"; docs/benchmarks.md: LUCB 0.23, top-two Thompson 0.18, the
paper's filter 0.10-0.14), capped by the budgets. Tokens are estimated from the prompts the study
will send (about four characters per token); dollars from the price table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.llm.protocol.request import estimate_tokens
from engine.settings import ScoringSettings
from engine.study.budgets import PriceTable
from engine.study.judging import JUDGE_ANSWER_TOKENS, JUDGE_REPLY_TOKENS, load_rubric
from engine.study.prompting import OUTPUT_ONLY, scoring_demo_count
from engine.study.settings import ProposalPlan, StudySettings
from engine.task.split import Splits

__all__ = ["EXPECTED_RATIO", "SpendEstimate", "estimate_spend"]

#: Expected scoring calls / full evaluation, per policy (docs/benchmarks.md, rounded up).
EXPECTED_RATIO = {
    "paired": 0.25,
    "lucb": 0.25,
    "ttts": 0.20,
    "halving": 0.30,
    "ape-filter": 0.15,
    "ucb": 0.50,
    "uniform": 1.0,
    "full": 1.0,
}
_INSTRUCTION_CHARS = 100
_PROPOSAL_OUTPUT_TOKENS = 40
SCORING_MAX_TOKENS = 16
#: Bytes, measured on this engine (`bench/study_memory.py`): the process before any study, an
#: example kept (its text aside), one (candidate, scoring example) cell of the policy and the
#: state, a candidate (its text aside), one call in flight (aiohttp).
_BASE_MB = 90.0
_PER_EXAMPLE = 600
_PER_CELL = 24
_PER_CANDIDATE = 4_000
_PER_CALL = 20_000
_PENDING_PER_CANDIDATE = 32  # engine.search's cap on one candidate's pulls in flight


@dataclass(frozen=True, slots=True)
class SpendEstimate:
    candidates: int
    n: int
    test: int
    full_scoring_calls: int
    expected_scoring_calls: int
    proposal_calls: int
    evaluation_calls: int
    worst_tokens: int
    expected_tokens: int
    worst_usd: float
    expected_usd: float
    priced: bool  # False when a model has no price (dollars then read 0)
    judged: bool = False  # each scoring and test call also asks the judge (counted in both)
    memory_mb: float = 0.0  # the process at most, this study's part included

    def lines(self) -> list[str]:
        usd = "" if self.priced else " (a model has no price: add it under [prices])"
        judge = (
            [
                "each scoring and test call also asks the judge: its tokens and price are in"
                " both lines"
            ]
            if self.judged
            else []
        )
        return [
            f"worst case (full evaluation of {self.candidates} candidates x {self.n} examples): "
            f"{self.full_scoring_calls + self.proposal_calls + self.evaluation_calls:,} calls "
            f"({self.full_scoring_calls:,} scoring, {self.proposal_calls:,} proposal, "
            f"{self.evaluation_calls:,} test), ~{self.worst_tokens:,} tokens, "
            f"~${self.worst_usd:,.4f}{usd}",
            f"expected: ~{self.expected_scoring_calls + self.proposal_calls + self.evaluation_calls:,} "
            f"calls ({self.expected_scoring_calls:,} scoring), ~{self.expected_tokens:,} tokens, "
            f"~${self.expected_usd:,.4f}",
            *judge,
            f"memory: at most ~{self.memory_mb:,.0f} MB ({self.candidates} candidates x "
            f"{self.n} scoring examples)",
        ]


@dataclass(frozen=True, slots=True)
class _CallTokens:
    """Estimated tokens of one call: a scoring (or final evaluation) call and a proposal call."""

    scoring_in: int
    scoring_out: int
    proposal_in: int
    proposal_out: int
    judge_in: int = 0  # a judge's call per scoring call (scoring = "judge")
    judge_out: int = 0


def _call_tokens(
    scoring: ScoringSettings, plan: ProposalPlan, splits: Splits, api: str
) -> _CallTokens:
    """From the mean example in the scoring pool (the test pool when there is none)."""
    pool = splits.scoring or splits.test
    mean_input = sum(len(e.input) for e in pool) / max(1, len(pool))
    mean_output = sum(len(e.outputs[0]) if e.outputs else 0 for e in pool) / max(1, len(pool))
    demos = scoring_demo_count(scoring.demos, api)
    asked = _INSTRUCTION_CHARS + mean_input + 20 + demos * (mean_input + mean_output + 30)
    if api == "chat" and scoring.chat_format == "output-only":
        asked += len(OUTPUT_ONLY)
    prompt = estimate_tokens("x" * int(asked))
    judge_in = judge_out = 0
    if scoring.mode == "logprob":
        scoring_in, scoring_out = prompt + estimate_tokens("x" * int(mean_output)), 0
    elif scoring.mode == "judge":  # the target's sentence, then the rubric around it
        scoring_in, scoring_out = prompt, JUDGE_ANSWER_TOKENS
        rubric = len(load_rubric(scoring.rubric).template) if scoring.rubric else 0
        judge_chars = rubric + mean_input + mean_output
        judge_in = estimate_tokens("x" * int(judge_chars)) + JUDGE_ANSWER_TOKENS
        judge_out = JUDGE_REPLY_TOKENS
    elif scoring.answer_tokens is not None:
        scoring_in, scoring_out = prompt, scoring.answer_tokens
    elif scoring.checks:  # read whole, up to 256 tokens: about as long as the expected output
        scoring_in, scoring_out = prompt, 2 * estimate_tokens("x" * int(mean_output)) + 8
    else:
        scoring_in, scoring_out = prompt, SCORING_MAX_TOKENS
    demo_chars = plan.demos_per_proposal * (mean_input + mean_output + 20) + 200
    proposal_in = estimate_tokens("x" * int(demo_chars))
    proposal_out = _PROPOSAL_OUTPUT_TOKENS * plan.candidates_per_call
    return _CallTokens(scoring_in, scoring_out, proposal_in, proposal_out, judge_in, judge_out)


def _proposal_calls(study: StudySettings) -> int:
    """The initial batch's calls plus those of every variant round, capped by the budget."""
    plan = study.proposals
    proposal_calls = math.ceil(plan.initial_candidates / plan.candidates_per_call) + (
        plan.variant_rounds * plan.calls_per_round()
    )
    if study.budgets.proposal_calls is not None:
        proposal_calls = min(proposal_calls, study.budgets.proposal_calls)
    return proposal_calls


def _memory_mb(study: StudySettings, splits: Splits, candidates: int) -> float:
    """The most memory the study may hold, in MB: its examples with their text, the
    candidates x scoring examples table, each candidate's text and kept answers, and the calls
    in flight (bounded by the concurrency and by the pending pulls the policy allows)."""
    pools = (*splits.demo, *splits.scoring, *splits.test)
    text = sum(len(e.input) + sum(len(o) for o in e.outputs) for e in pools)
    examples = len(pools) * _PER_EXAMPLE + text
    cells = candidates * len(splits.scoring) * _PER_CELL
    texts = candidates * (
        _PER_CANDIDATE + study.proposals.max_instruction_chars + study.answer_chars
    )
    in_flight = min(study.throughput.concurrency, candidates * _PENDING_PER_CANDIDATE) * _PER_CALL
    return _BASE_MB + (examples + cells + texts + in_flight) / 1e6


def _candidates(study: StudySettings, human: bool) -> int:
    """The candidates the study may hold: its plan, the user's own, the human instruction."""
    plan = study.proposals
    per_round = (plan.variant_leaders + int(plan.merge)) * plan.variants_per_leader
    planned = plan.initial_candidates + plan.variant_rounds * per_round + study.user_candidates
    planned += int(human and plan.include_human)
    return min(plan.max_candidates, planned)


def estimate_spend(
    study: StudySettings,
    scoring: ScoringSettings,
    splits: Splits,
    *,
    api: str,
    human: bool,
    prices: PriceTable,
    scoring_model: str,
    proposal_model: str,
    judge_model: str,
) -> SpendEstimate:
    """The study's spend and memory, before its first call (`study.user_candidates`: the user's
    own, which join before any proposal; `human`: the task has a human instruction)."""
    n = len(splits.scoring)
    candidates = _candidates(study, human)
    full = candidates * n
    expected = math.ceil(full * EXPECTED_RATIO.get(study.search.policy, 1.0))
    if study.budgets.scoring_calls is not None:
        expected = min(expected, study.budgets.scoring_calls)
    proposal_calls = _proposal_calls(study)
    evaluation = (2 + int(human)) * len(splits.test)
    size = _call_tokens(scoring, study.proposals, splits, api)

    def tokens(scoring_calls: int) -> int:
        per_call = size.scoring_in + size.scoring_out + size.judge_in + size.judge_out
        return (scoring_calls + evaluation) * per_call + (
            proposal_calls * (size.proposal_in + size.proposal_out)
        )

    def usd(scoring_calls: int) -> float:
        calls = scoring_calls + evaluation
        return (
            prices.cost(scoring_model, calls * size.scoring_in, calls * size.scoring_out)
            + prices.cost(judge_model, calls * size.judge_in, calls * size.judge_out)
            + prices.cost(
                proposal_model,
                proposal_calls * size.proposal_in,
                proposal_calls * size.proposal_out,
            )
        )

    return SpendEstimate(
        candidates=candidates,
        n=n,
        test=len(splits.test),
        full_scoring_calls=full,
        expected_scoring_calls=expected,
        proposal_calls=proposal_calls,
        evaluation_calls=evaluation,
        worst_tokens=tokens(full),
        expected_tokens=tokens(expected),
        worst_usd=usd(full),
        expected_usd=usd(expected),
        priced=scoring_model in prices
        and proposal_model in prices
        and (scoring.mode != "judge" or judge_model in prices),
        judged=scoring.mode == "judge",
        memory_mb=_memory_mb(study, splits, candidates),
    )
