"""Checks: what the answer must be, declared with the task or in the settings, as promptfoo's
assertions are written -- a label of a set, JSON with required keys or a JSON Schema, a number
within a tolerance, a regular expression, words it contains, a length -- each a reward in
[0, 1], and several a weighted mean.

A check is a table with its ``kind`` (TOML ``[[scoring.checks]]``, a task file's ``"checks"``
list, a request's ``checks``), decoded and checked where it enters like every setting: a bad
pattern or schema is refused with its place (``scoring.checks[1].pattern: not a regular
expression ...``), and `check_examples` refuses a task whose expected outputs the checks cannot
read (a number check on an output with no number), naming the example. An answer a check cannot
read -- text that is not JSON, no number in it -- is a reward of 0 with the reason kept beside
the answer (`Grade`), never a failed call.

How a check reads the answer: ``label``, ``number`` and ``match`` read it as the metrics do
(its first line, without a label or quotes: `engine.task.metrics.read_answer`); the others read
all of it (stripped; ``json`` without a Markdown code fence around it).
Reference: promptfoo, "Assertions and metrics" (https://promptfoo.dev/docs/configuration/expected-outputs/);
JSON Schema, draft 2020-12 and earlier, validated with the jsonschema package.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.errors import ConfigError
from engine.nesting import json_depth_problem
from engine.task import BINARY_METRICS, METRICS, Example
from engine.task.metrics import chosen, metric_function, read_answer, same_choice

__all__ = [
    "Check",
    "Grade",
    "check_examples",
    "checks_binary",
    "grader",
]

if TYPE_CHECKING:
    MetricName = str
else:
    MetricName = Literal[METRICS]

#: (reward in [0, 1], why it is below 1 when a check could not read the answer or refused it)
Outcome = tuple[float, str]
#: The grade of an answer for an example: the checks' weighted mean, and their reasons.
Grade = Callable[[str, Example], Outcome]

Word = Annotated[str, Meta(min_length=1, max_length=10_000)]
Words = Annotated[list[Word], Meta(min_length=1, max_length=1000)]
_NUMBER = re.compile(r"[-+−]?(?:\d+(?:[,_]\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*?)\n?```$", re.S)


class _Check(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    """What every check has: its weight in a weighted mean of several."""

    weight: Annotated[float, Meta(gt=0, le=1000)] = 1.0

    @property
    def name(self) -> str:
        tag = self.__struct_config__.tag
        assert isinstance(tag, str)
        return tag

    @property
    def binary(self) -> bool:
        """Is every reward it gives 0 or 1?"""
        return True

    def score(self, answer: str, example: Example) -> Outcome:
        raise NotImplementedError

    def expected_problem(self, output: str) -> str | None:
        """What is wrong with an expected output this check compares with, or None."""
        return None


class Label(_Check, frozen=True, tag="label"):
    """The answer names one label of the set, and (`expected`) it is the example's output;
    without `expected`, any label of the set is right."""

    labels: Words
    expected: bool = True

    def score(self, answer: str, example: Example) -> Outcome:
        said = read_answer(answer)
        pick = chosen(said, tuple(self.labels))
        if pick is None:
            return 0.0, f"names none of the labels ({_short(said)})"
        if not self.expected or any(same_choice(pick, o) for o in example.outputs):
            return 1.0, ""
        return 0.0, ""

    def expected_problem(self, output: str) -> str | None:
        if self.expected and chosen(output, tuple(self.labels)) is None:
            return f"its output {_short(output)} is none of the labels"
        return None


class Json(_Check, frozen=True, tag="json"):
    """The answer is JSON: an object with the `required` keys, valid against `schema` (JSON
    Schema), and equal to the expected output (JSON) on the `compare` keys (the share of them
    that are: strings equal up to case and spacing, other values equal)."""

    required: Annotated[list[Word], Meta(max_length=1000)] = []
    schema: dict[str, Any] | None = None
    compare: Annotated[list[Word], Meta(max_length=1000)] = []

    def __post_init__(self) -> None:
        if self.schema is not None:
            _schema_validator(self.schema)  # a bad schema is refused where it is declared

    @property
    def binary(self) -> bool:
        return len(self.compare) <= 1

    def score(self, answer: str, example: Example) -> Outcome:
        value, problem = _parse_json(answer)
        if problem:
            return 0.0, problem
        if (self.required or self.compare) and not isinstance(value, dict):
            return 0.0, f"not a JSON object (a {_json_type(value)})"
        missing = [key for key in self.required if key not in value]
        if missing:
            return 0.0, f"missing key {missing[0]!r}" + (
                f" (and {len(missing) - 1} more)" * (len(missing) > 1)
            )
        if self.schema is not None:
            problem = _schema_problem(self.schema, value)
            if problem:
                return 0.0, f"schema: {problem}"
        if not self.compare:
            return 1.0, ""
        return max(_compared(value, self.compare, output) for output in example.outputs)

    def expected_problem(self, output: str) -> str | None:
        if not self.compare and self.schema is None:
            return None
        value, problem = _parse_json(output)
        if problem:
            return f"its output is {problem}"
        if self.compare and not isinstance(value, dict):
            return "its output is not a JSON object, which compare needs"
        absent = [key for key in self.compare if key not in value]
        if absent:
            return f"its output has no key {absent[0]!r} to compare"
        if self.schema is not None and _schema_problem(self.schema, value):
            return f"its output does not fit the schema ({_schema_problem(self.schema, value)})"
        return None


class Number(_Check, frozen=True, tag="number"):
    """The answer's first number is within `tolerance` of the expected output's (with
    `relative`, a share of the expected value: 0.05 is 5 %)."""

    tolerance: Annotated[float, Meta(ge=0, le=1e300)] = 0.0
    relative: bool = False

    def score(self, answer: str, example: Example) -> Outcome:
        said = _number(read_answer(answer))
        if said is None:
            return 0.0, f"no number in the answer ({_short(read_answer(answer))})"
        for output in example.outputs:
            expected = _number(output)
            if expected is None:
                continue
            allowed = self.tolerance * (abs(expected) if self.relative else 1.0)
            if abs(said - expected) <= allowed + 1e-12 * max(1.0, abs(expected)):
                return 1.0, ""
        return 0.0, ""

    def expected_problem(self, output: str) -> str | None:
        return (
            None if _number(output) is not None else f"its output {_short(output)} holds no number"
        )


class Regex(_Check, frozen=True, tag="regex"):
    """The answer matches the regular expression (Python's `re`, searched anywhere: anchor
    it with ``^`` and ``$`` to match the whole answer)."""

    pattern: Annotated[str, Meta(min_length=1, max_length=10_000)]
    ignore_case: bool = False

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"pattern: not a regular expression ({error})") from None

    def score(self, answer: str, example: Example) -> Outcome:
        flags = re.IGNORECASE if self.ignore_case else 0
        if re.search(self.pattern, answer.strip(), flags | re.MULTILINE) is None:
            return 0.0, f"does not match {self.pattern!r}"
        return 1.0, ""


class ContainsAll(_Check, frozen=True, tag="contains_all"):
    """The answer contains every value (case aside unless `case`)."""

    values: Words
    case: bool = False

    def score(self, answer: str, example: Example) -> Outcome:
        absent = [v for v in self.values if not _contains(answer, v, self.case)]
        return (0.0, f"lacks {absent[0]!r}") if absent else (1.0, "")


class ContainsAny(_Check, frozen=True, tag="contains_any"):
    """The answer contains at least one of the values (case aside unless `case`)."""

    values: Words
    case: bool = False

    def score(self, answer: str, example: Example) -> Outcome:
        if any(_contains(answer, v, self.case) for v in self.values):
            return 1.0, ""
        return 0.0, "contains none of the values"


class Length(_Check, frozen=True, tag="length"):
    """The answer's length, in characters or words, is within [`min`, `max`]."""

    min: Annotated[int, Meta(ge=0, le=10**9)] | None = None
    max: Annotated[int, Meta(ge=0, le=10**9)] | None = None
    unit: Literal["characters", "words"] = "characters"

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")

    def score(self, answer: str, example: Example) -> Outcome:
        text = answer.strip()
        size = len(text.split()) if self.unit == "words" else len(text)
        low, high = self.min or 0, self.max if self.max is not None else math.inf
        if low <= size <= high:
            return 1.0, ""
        return 0.0, f"{size} {self.unit}, not {_bounds(self.min, self.max)}"


class Match(_Check, frozen=True, tag="match"):
    """The answer against the expected outputs by a metric (the task's when left out)."""

    metric: MetricName | None = None

    @property
    def binary(self) -> bool:
        return self.metric is None or self.metric in BINARY_METRICS

    def score(self, answer: str, example: Example) -> Outcome:
        metric = self.metric or "exact_match"  # `grader` names the task's metric in its place
        return metric_function(metric)(read_answer(answer, metric), example), ""


Check = Label | Json | Number | Regex | ContainsAll | ContainsAny | Length | Match
KINDS = ("label", "json", "number", "regex", "contains_all", "contains_any", "length", "match")


def checks_binary(checks: Sequence[Check], metric: str) -> bool:
    """Are the rewards of `checks` all 0 or 1? One binary check, or none and a binary metric;
    a weighted mean of several is not (the scheduler then takes them as continuous)."""
    if not checks:
        return metric in BINARY_METRICS
    if len(checks) > 1:
        return False
    (one,) = checks
    if isinstance(one, Match):
        return (one.metric or metric) in BINARY_METRICS
    return one.binary


def grader(checks: Sequence[Check], metric: str) -> Grade:
    """The weighted mean of `checks` (a `match` check uses `metric` unless it names one), and
    the reasons of those that gave 0, each after its kind (``json: not JSON (...)``)."""
    if not checks:
        raise ConfigError("checks: give at least one check")
    scorers: list[tuple[str, float, Callable[[str, Example], Outcome]]] = []
    for check in checks:
        if isinstance(check, Match) and check.metric is None:
            check = msgspec.structs.replace(check, metric=metric)
        scorers.append((check.name, check.weight, check.score))
    total = math.fsum(weight for _, weight, _ in scorers)

    def grade(answer: str, example: Example) -> Outcome:
        rewards, reasons = [], []
        for name, weight, score in scorers:
            reward, why = score(answer, example)
            reward = min(1.0, max(0.0, float(reward))) if math.isfinite(reward) else 0.0
            rewards.append(weight * reward)
            if why:
                reasons.append(f"{name}: {why}")
        return min(1.0, max(0.0, math.fsum(rewards) / total)), "; ".join(reasons)

    return grade


def check_examples(checks: Sequence[Check], examples: Sequence[Example], where: str) -> None:
    """Refuse, naming the example, an expected output that a check compares with and cannot
    read (a number check on an output with no number, a label outside the set)."""
    for index, check in enumerate(checks):
        for example in examples:
            for output in example.outputs:
                problem = check.expected_problem(output)
                if problem is not None:
                    raise ConfigError(
                        f"{where}[{index}] ({check.name}): example {example.key or '?'}: {problem}"
                    )


# -- reading answers ---------------------------------------------------------------------------


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _parse_json(answer: str) -> tuple[Any, str]:
    """The JSON value of an answer (without a Markdown code fence around it), or what is
    wrong with it."""
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    if not text:
        return None, "not JSON (the answer is empty)"
    deep = json_depth_problem(text)
    if deep is not None:
        return None, f"not JSON we read ({deep})"
    try:
        return json.loads(text), ""
    except json.JSONDecodeError as error:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:  # an object inside words around it
            try:
                return json.loads(text[start : end + 1]), ""
            except json.JSONDecodeError:
                pass
        return None, f"not JSON ({error.msg}: line {error.lineno} column {error.colno})"
    except RecursionError:  # pragma: no cover - the depth check comes first
        return None, "not JSON we read (nested too deep)"


def _same(said: Any, expected: Any) -> bool:
    if isinstance(said, str) and isinstance(expected, str):
        return " ".join(said.lower().split()) == " ".join(expected.lower().split())
    if isinstance(said, bool) or isinstance(expected, bool):
        return said is expected
    return bool(said == expected)


def _compared(value: dict[str, Any], keys: list[str], output: str) -> Outcome:
    expected, _ = _parse_json(output)
    if not isinstance(expected, dict):
        return 0.0, "the expected output is not a JSON object"
    differ = [key for key in keys if key not in value or not _same(value[key], expected.get(key))]
    if not differ:
        return 1.0, ""
    return 1 - len(differ) / len(keys), ""


def _number(text: str) -> float | None:
    found = _NUMBER.search(text)
    if found is None:
        return None
    try:
        value = float(found.group().replace(",", "").replace("_", "").replace("−", "-"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _contains(answer: str, value: str, case: bool) -> bool:
    return value in answer if case else value.casefold() in answer.casefold()


def _bounds(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _schema_validator(schema: dict[str, Any]) -> Any:
    """A validator of `schema` (checked as a JSON Schema of the draft it names), made once."""
    return _validator(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _validator(text: str) -> Any:
    import jsonschema  # the one check that needs it: imported where it is used

    schema = json.loads(text)
    try:
        validator = jsonschema.validators.validator_for(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path)
        raise ValueError(
            f"schema: not a JSON Schema ({error.message}{f' at {where}' if where else ''})"
        ) from None
    return validator(schema)


def _schema_problem(schema: dict[str, Any], value: Any) -> str:
    import jsonschema

    validator = _schema_validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return ""
    where = "/".join(str(part) for part in error.absolute_path)
    return str(error.message) + (f" at {where}" if where else "")
