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
    "contains",
    "exact_match",
    "exact_set",
    "f1",
    "metric_function",
    "multiple_choice",
    "normalise",
    "score",
]

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SET_SEPARATORS = re.compile(r",|\band\b|;|\n")


def normalise(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


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


def multiple_choice(prediction: str, answer: str, choices: tuple[str, ...] | None = None) -> float:
    """1 when the prediction picks the answer among the choices.

    The prediction picks a choice when it equals it after normalisation, or, failing that, when
    it starts with exactly one choice (so "True, because ..." picks "True").
    """
    said = normalise(prediction)
    wanted = normalise(answer)
    if said == wanted:
        return 1.0
    if not choices:
        return 0.0
    starting = [c for c in (normalise(c) for c in choices) if c and said.startswith(c + " ")]
    longest = max(starting, key=len, default=None)
    return 1.0 if longest == wanted else 0.0


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
