"""Metrics that compare a model's answer with a task's accepted outputs.

Normalisation and metrics follow the instruction-induction benchmark (Honovich et al. 2022, as used
by APE's `evaluation/instruction_induction/utility.py`): lower case, punctuation removed, articles
(a, an, the) removed, whitespace collapsed. A prediction is correct when it matches any accepted
output; every reward lies in [0, 1].
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

from engine.errors import ConfigError
from engine.task.types import METRICS, Example

__all__ = [
    "chosen",
    "contains",
    "exact_match",
    "exact_set",
    "f1",
    "metric_function",
    "multiple_choice",
    "normalise",
    "read_answer",
    "same_choice",
    "score",
]

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SET_SEPARATORS = re.compile(r",|\band\b|;|\n")
_ANSWER_LABEL = re.compile(r"^\s*(?:the\s+)?(?:output|answer|a|response)\s*(?:is)?\s*:\s*", re.I)
_WRAPPERS = ('""', "''", "``", "**", "“”", "‘’", "«»")


def _unwrap(text: str) -> str:
    """Without quotes, backticks or bold markers that wrap the whole text."""
    text = text.strip()
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for pair in _WRAPPERS:
            left, right = (pair[:1], pair[1:]) if len(pair) == 2 else (pair, pair)
            if text.startswith(left) and text.endswith(right) and len(text) > len(left + right):
                text = text[len(left) : len(text) - len(right)].strip()
                changed = True
    return text


def read_answer(raw: str, metric: str = "exact_match") -> str:
    """The answer a chat model meant, as the metric reads it: the first non-blank line (every
    line for `exact_set`, whose items may come one a line), without a leading "Output:" or
    "Answer:" label, quotes or bold markers around it, and a trailing period (a single one:
    "etc." stays "etc"). The metric then applies its own normalisation (`normalise`)."""
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = ", ".join(lines) if metric == "exact_set" else lines[0]
    text = _ANSWER_LABEL.sub("", text, count=1)
    text = _unwrap(text)
    if text.endswith(".") and not text.endswith(".."):
        text = _unwrap(text[:-1])
    return text


def _plain(text: str) -> str:
    """Lower case, hyphens as spaces, no punctuation, single spaces (no article removal)."""
    return " ".join(text.lower().replace("-", " ").translate(_PUNCTUATION).split())


def same_choice(first: str, second: str) -> bool:
    """Do two choices name the same thing, case, hyphens, punctuation and spacing aside (articles
    kept: "(a)" is a choice)?"""
    return _plain(first) == _plain(second)


def normalise(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace.

    Hyphens become spaces ("forty-two" = "forty two"), as in the benchmark's normalisation. When
    the text is nothing but articles ("a", the answer of a first-letter task) they are kept, so
    that an empty prediction never matches it.
    """
    plain = _plain(text)
    without_articles = " ".join(_ARTICLES.sub(" ", plain).split())
    return without_articles or plain


def exact_match(prediction: str, answer: str) -> float:
    return 1.0 if normalise(prediction) == normalise(answer) else 0.0


def contains(prediction: str, answer: str) -> float:
    """1 when the normalised answer appears in the normalised prediction as whole words."""
    target = normalise(answer)
    if not target:
        return 0.0
    return 1.0 if f" {target} " in f" {normalise(prediction)} " else 0.0


def f1(prediction: str, answer: str) -> float:
    """Token F1 between the normalised texts (SQuAD style): partial credit in [0, 1]."""
    predicted = normalise(prediction).split()
    expected = normalise(answer).split()
    if not predicted or not expected:
        return 1.0 if predicted == expected else 0.0
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _items(text: str) -> frozenset[str]:
    return frozenset(item for item in (normalise(p) for p in _SET_SEPARATORS.split(text)) if item)


def exact_set(prediction: str, answer: str) -> float:
    """1 when both name the same set of items (separated by commas, "and", semicolons)."""
    return 1.0 if _items(prediction) == _items(answer) else 0.0


def chosen(prediction: str, choices: tuple[str, ...]) -> str | None:
    """The choice a free-text prediction picks, or None when it picks none or is ambiguous.

    In order: the prediction equals a choice (case, punctuation and spacing aside); it starts
    with a choice and names no other one after it ("True, because ..." picks "True", the longest
    such choice wins, "true or false" picks nothing); it mentions exactly one choice as whole
    words ("The answer is (b)." picks "(b)"). Articles are kept, since choices such as "(a)"
    would otherwise vanish.
    """
    said = _plain(prediction)
    plain = {_plain(choice): choice for choice in choices if _plain(choice)}
    if said in plain:
        return plain[said]
    starting = [c for c in plain if said.startswith(c + " ")]
    if starting:
        first = max(starting, key=len)
        rest = f" {said[len(first) :]} "
        if any(f" {c} " in rest for c in plain if c != first):
            return None  # "true or false": it names another choice too
        return plain[first]
    mentioned = [c for c in plain if f" {c} " in f" {said} "]
    # "not entailment" mentions "entailment" too: a choice inside a longer one does not count
    mentioned = [
        c for c in mentioned if not any(c != d and f" {c} " in f" {d} " for d in mentioned)
    ]
    if len(mentioned) == 1:
        return plain[mentioned[0]]
    return None


def multiple_choice(prediction: str, answer: str, choices: tuple[str, ...] | None = None) -> float:
    """1 when the prediction picks `answer` among `choices` (see `chosen`).

    Without choices it falls back to exact match.
    """
    if not choices:
        return exact_match(prediction, answer)
    pick = chosen(prediction, choices if answer in choices else (*choices, answer))
    return 1.0 if pick is not None and _plain(pick) == _plain(answer) else 0.0


_PAIRWISE: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "contains": contains,
    "f1": f1,
    "exact_set": exact_set,
}


def metric_function(name: str) -> Callable[[str, Example], float]:
    """The reward function of a metric: `(prediction, example) -> float in [0, 1]`."""
    if name == "multiple_choice":

        def choose(prediction: str, example: Example) -> float:
            return max(
                (
                    multiple_choice(prediction, answer, example.choices)
                    for answer in example.outputs
                ),
                default=0.0,
            )

        return choose
    pairwise = _PAIRWISE.get(name)
    if pairwise is None:
        raise ConfigError(f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}")

    def best(prediction: str, example: Example) -> float:
        return max((pairwise(prediction, answer) for answer in example.outputs), default=0.0)

    return best


def score(metric: str, prediction: str, example: Example) -> float:
    """Reward in [0, 1] of `prediction` for `example` under `metric`."""
    return metric_function(metric)(prediction, example)
