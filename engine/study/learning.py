"""Saying when nothing is being learned: every candidate scored so far has the same reward.

A study whose every answer scores 0 (or every one 1) cannot tell its candidates apart: the pick
is arbitrary and the budget buys nothing. That is almost never the candidates' fault; it is the
answer format (a chat model writing a sentence where the metric wants a word), the metric, or a
model too small for the task. Once the first batch is in -- every candidate pulled, at least
`MIN_PULLS` rewards, or 50 rewards over at least 5 candidates when the pool is larger than
the budget reaches -- and every reward so far is the same 0 or 1, the study warns once
(`StudyWarning`, code ``nothing_learned``) with two answers beside their expected outputs and
those causes. The final evaluation checks again: a winner and a human instruction that both
score 0 on the test pool get the same warning if it was not given yet.
"""

from __future__ import annotations

from engine.errors import setting, setting_value
from engine.study.events import StudyWarning, WarningExample
from engine.study.shared import Shared
from engine.task.types import Example

__all__ = [
    "MIN_PULLS",
    "NOTHING_LEARNED",
    "check_learning",
    "recent_examples",
    "warn_nothing_learned",
]

NOTHING_LEARNED = "nothing_learned"
MIN_PULLS = 10
_SHOWN = 2


def _causes(reward: float) -> str:
    """The likely causes of every reward being `reward`, naming the settings to try as the user
    gives them."""
    if reward == 1.0:
        return (
            "Likely causes: the task is too easy for this model, or the metric accepts any "
            f"answer (check {setting('metric')}); the pick among equal candidates is arbitrary."
        )
    return (
        "Likely causes: the answer format (the model writes more than the output: try the "
        f"output-only chat format, {setting_value('scoring_demos', '3')}, or "
        f"{setting_value('api', 'completions')}), the metric (exact match on free text: try "
        f"{setting_value('metric', 'contains')} or f1), or the model (too small for the task: "
        f"try {setting_value('scoring', 'logprob')}, or a larger model)."
    )


def check_learning(shared: Shared) -> None:
    """Called on the monitor's tick: warn once when the first batch is in and every reward
    so far is the same 0 or 1."""
    state = shared.state
    if state.warned(NOTHING_LEARNED) or not shared.activity.initial_done:
        return
    if state.reward_low != state.reward_high or state.reward_low not in (0.0, 1.0):
        return
    policy = state.policy
    live = [arm.index for arm in state.arms if arm.index not in state.dropped]
    counts = [int(policy.stats(arm).count) for arm in live]
    pulls, pulled = sum(counts), sum(count > 0 for count in counts)
    # the first batch: every candidate scored, or (a pool larger than the budget reaches)
    # enough answers over enough candidates that a lucky run of zeros is out of the question
    if pulls < MIN_PULLS or (pulled < len(live) and (pulls < 50 or pulled < 5)):
        return
    reward = state.reward_low
    warn_nothing_learned(
        shared,
        # said once and read later: the count is of the answers in when it was said
        f"nothing is being learned: the first {pulls:,} answers, over {len(live)} candidates, "
        f"all scored {reward:g}, so no candidate can be told from another.",
        reward,
        recent_examples(shared),
    )


def recent_examples(shared: Shared) -> list[WarningExample]:
    """The latest scoring answers, each beside the output its example expected."""
    pool = shared.setup.splits.scoring
    return [
        _example(pool[example], answer)
        for _, example, answer in shared.state.answers[-_SHOWN:]
        if 0 <= example < len(pool)
    ]


def warn_nothing_learned(
    shared: Shared, finding: str, reward: float, examples: list[WarningExample]
) -> None:
    """Emit the warning (once): the finding, the example answers, the likely causes."""
    if shared.state.warned(NOTHING_LEARNED):
        return
    shown = "; ".join(f"answer {e.answer!r} where {e.expected!r} was expected" for e in examples)
    message = " ".join(part for part in (finding, f"For example: {shown}." if shown else "",
                                         _causes(reward)) if part)  # fmt: skip
    shared.emit(StudyWarning(code=NOTHING_LEARNED, message=message, examples=examples))
    shared.activity.message = "warning: " + finding


def _example(example: Example, answer: str) -> WarningExample:
    expected = example.outputs[0] if example.outputs else ""
    return WarningExample(input=example.input[:200], answer=answer, expected=expected[:200])
