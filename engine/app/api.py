"""The Python entry for notebooks and scripts: examples in memory, a metric or scorer as a
function, endpoints as values; the result back.

    from engine.app import Endpoint, optimize

    result = optimize(
        [{"input": "hot", "output": "cold"}, {"input": "old", "output": ["new", "young"]}, ...],
        target=Endpoint("gpt-4o-mini"),   # base URL and key: $OPENAI_BASE_URL, $OPENAI_API_KEY
        metric=lambda answer, example: float(answer.lower() in example.outputs),
        budget_usd=1.0,
    )
    print(result.winner.instruction, result.winner.test_score, result.winner.test_ci)

`optimize` runs the study to its end (from a notebook too: it runs on a thread of its own when
an event loop is running already), saying on standard error what it does: where its calls go,
the journal it writes and the response cache it reads (under ``.ape/`` in the working
directory by default) and how many answers that cache gave. `optimize_async` is the same
coroutine for code that has a loop. Every other setting of `StudyConfig` is a keyword
(``budget_scoring_calls=2000``, ``concurrency=64``, ``backend="sim"``, ...). A role may run on
several endpoints serving one model -- replicas, or two keys with their own limits -- given as
a list::

    optimize(examples, target=[Endpoint("llama-8b", "http://gpu-a:8000/v1", rpm=600),
                               Endpoint("llama-8b", "http://gpu-b:8000/v1", rpm=600)], ...)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.app.execute import cache_path, execute
from engine.app.prepare import prepare
from engine.errors import ConfigError, DatasetError, ScorerError
from engine.llm.protocol.results import Completion
from engine.propose import Templates, load_templates
from engine.propose.templates import fill
from engine.settings import StudyConfig
from engine.study.result import StudyResult
from engine.study.scoring import SCORING_MAX_TOKENS, SCORING_STOP, ScorerFunction, example_text
from engine.task import Example, Task
from engine.task.fields import field_names, input_of, text_of

__all__ = ["Endpoint", "optimize", "optimize_async"]

Metric = Callable[[str, Example], float]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model behind an endpoint. No `base_url`: ``$OPENAI_BASE_URL`` (or Anthropic's API
    for ``protocol="anthropic"``); no key source: ``$OPENAI_API_KEY`` (``$ANTHROPIC_API_KEY``)
    when set. `headers` values may be ``env:VAR`` or ``file:PATH``. `rpm` and `tpm` are its
    limits, `timeout_s` a call's; in a list of several, `weight` shares the calls in flight and
    `name` is its name on screen (each needs its `base_url` there)."""

    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    protocol: str = "openai"
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float | None = None
    weight: float = 1.0
    name: str | None = None


Endpoints = Endpoint | Sequence[Endpoint]


def _example(item: Example | Mapping[str, Any], index: int) -> Example:
    if isinstance(item, Example):
        return item
    if not isinstance(item, Mapping) or "input" not in item or "output" not in item:
        raise ConfigError(f"examples[{index}]: give an Example or a dict with input and output")
    output = item["output"]
    listed = output if isinstance(output, list | tuple) else (output,)
    outputs = tuple(text_of(o) if isinstance(o, Mapping) else str(o) for o in listed)
    choices = item.get("choices")
    try:  # a dict input is an input of named fields
        text, fields = input_of(item["input"], f"examples[{index}].input")
    except DatasetError as error:
        raise ConfigError(str(error)) from None
    return Example(
        input=text,
        outputs=outputs,
        choices=tuple(str(c) for c in choices) if choices else None,
        key=str(index + 1),
        fields=fields,
    )


def print_line(line: str) -> None:
    """A line of what the study does, on standard error (a notebook shows it under the cell)."""
    print(line, file=sys.stderr, flush=True)


def _quiet(line: str) -> None:
    return None


def _task(task: Task | Iterable[Example | Mapping[str, Any]], human: str | None) -> Task:
    if isinstance(task, Task):
        return task
    examples = tuple(_example(item, index) for index, item in enumerate(task))
    if not examples:
        raise ConfigError("examples: give at least 3 examples")
    if len({e.fields is None for e in examples}) > 1:
        raise ConfigError(
            "examples: give every example's input the same way (all text, or all dicts of "
            "named fields)"
        )
    digest = hashlib.sha256(repr([(e.input, e.outputs) for e in examples]).encode()).hexdigest()
    metric = "multiple_choice" if all(e.choices for e in examples) else "exact_match"
    named = field_names(examples)
    return Task(f"examples-{digest[:8]}", examples, metric, human_instruction=human, fields=named)


def _check_metric(metric: Metric) -> None:
    """A metric that cannot take ``(answer, example)`` is refused before any call."""
    try:
        signature = inspect.signature(metric)
    except (TypeError, ValueError):  # a builtin or an extension with no signature: try it
        return
    try:
        signature.bind("answer", Example(input="", outputs=("",)))
    except TypeError:
        raise ConfigError(
            f"metric {_name(metric)}: must take two arguments, (answer, example), and return a "
            f"number in [0, 1] (it takes {signature})"
        ) from None


def _name(function: Any) -> str:
    return str(getattr(function, "__name__", type(function).__name__))


def metric_scorer(metric: Metric, api: str, templates: Templates) -> ScorerFunction:
    """Execution accuracy with `metric(answer, example)` in place of a named metric. The metric
    raising or returning something other than a number in [0, 1] is a `ScorerError` naming the
    example (the study stops there), never a failed call of the endpoint."""
    _check_metric(metric)
    name = _name(metric)

    async def scorer(instruction: str, example: Example, client: Any) -> float:
        named = {"instruction": instruction, "input": example.input}
        prompt = fill(templates.scoring, example.fields, **named)
        kwargs: dict[str, Any] = {"max_tokens": SCORING_MAX_TOKENS, "temperature": 0.0}
        answer: Completion
        if api == "completions":
            answer = await client.complete(prompt, stop=list(SCORING_STOP), **kwargs)
        else:
            messages = [{"role": "user", "content": prompt}]
            answer = await client.chat(messages, stop=list(SCORING_STOP), **kwargs)
        try:
            value = metric(answer.text.strip(), example)
        except Exception as error:
            raise ScorerError(
                f"metric {name} raised {type(error).__name__}: {error} -- on "
                f"{example_text(example)}, answer {answer.text.strip()!r}; fix the metric and "
                "run again"
            ) from error
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ScorerError(
                f"metric {name} returned {value!r} on {example_text(example)}; it must return "
                "a number in [0, 1]"
            )
        return float(value)

    scorer.__qualname__ = getattr(metric, "__qualname__", "metric")
    scorer.__module__ = getattr(metric, "__module__", None) or "__main__"
    return scorer


def _entry(endpoint: Endpoint, where: str) -> dict[str, Any]:
    """One endpoint of a list, as an `EndpointSettings` table."""
    if endpoint.base_url is None:
        raise ConfigError(f"{where}.base_url: each endpoint of a list needs its URL")
    entry: dict[str, Any] = {
        "base_url": endpoint.base_url,
        "name": endpoint.name,
        "model": endpoint.model,
        "api_key_env": endpoint.api_key_env,
        "api_key_file": endpoint.api_key_file,
        "headers": dict(endpoint.headers) or None,
        "rpm": endpoint.rpm,
        "tpm": endpoint.tpm,
        "timeout_s": endpoint.timeout_s,
        "weight": endpoint.weight,
    }
    return {key: value for key, value in entry.items() if value is not None}


def _listed(role: Endpoints, field: str) -> list[Endpoint]:
    listed = [role] if isinstance(role, Endpoint) else list(role)
    if not listed:
        raise ConfigError(f"{field}: give an Endpoint or a list of them")
    protocols = {one.protocol for one in listed}
    if len(protocols) > 1:
        raise ConfigError(f"{field}: the endpoints of a role speak one protocol ({protocols})")
    return listed


def _endpoint_settings(target: Endpoints | None, proposal: Endpoints | None) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if target is not None:
        first, *others = listed = _listed(target, "target")
        settings.update(model=first.model, protocol=first.protocol)
        if others or first.name is not None or first.weight != 1.0:
            settings["endpoints"] = [_entry(one, f"target[{i}]") for i, one in enumerate(listed)]
        else:
            settings.update(
                base_url=first.base_url,
                api_key_env=first.api_key_env,
                api_key_file=first.api_key_file,
                headers=dict(first.headers),
                **{k: v for k, v in (("rpm", first.rpm), ("tpm", first.tpm)) if v is not None},
            )
            if first.timeout_s is not None:
                settings["timeout_s"] = first.timeout_s
    if proposal is not None:
        first, *others = listed = _listed(proposal, "proposal")
        settings["proposal_model"] = first.model
        own = first.rpm is not None or first.tpm is not None or first.name is not None
        if others or own:
            settings["proposal_endpoints"] = [
                _entry(one, f"proposal[{i}]") for i, one in enumerate(listed)
            ]
        else:
            settings.update(
                proposal_base_url=first.base_url,
                proposal_api_key_env=first.api_key_env,
                proposal_api_key_file=first.api_key_file,
                proposal_headers=dict(first.headers),
                proposal_timeout_s=first.timeout_s,
            )
    return settings


async def optimize_async(
    task: str | Task | Iterable[Example | Mapping[str, Any]],
    *,
    target: Endpoints | None = None,
    proposal: Endpoints | None = None,
    metric: str | Metric | None = None,
    scorer: ScorerFunction | None = None,
    human_instruction: str | None = None,
    say: Callable[[str], None] | None = print_line,
    **settings: Any,
) -> StudyResult:
    """Find the best instruction for `task` -- a built-in name or a file, a `Task`, or examples
    (dicts with ``input`` and ``output``, or `Example` values) -- and return the result.
    `metric` is a metric's name or ``(answer, example) -> float in [0, 1]``; `scorer` an
    ``async (instruction, example, client) -> float`` that replaces scoring whole.

    What it does is said line by line to `say` (standard error by default; None: nothing):
    where the calls go, the journal it writes (``.ape/journals/`` in the working directory,
    unless ``journal=`` names one), the response cache it reads and writes
    (``.ape/cache.sqlite3``, unless ``cache=`` names one, or ``no_cache=True``), and how many
    answers came from that cache rather than the model."""
    say = say or _quiet
    value = None if isinstance(task, str) else _task(task, human_instruction)
    config_settings = {**_endpoint_settings(target, proposal), **settings}
    if isinstance(metric, str):
        config_settings["metric"] = metric
    function = scorer
    if function is None and callable(metric):
        templates = load_templates(config_settings.get("templates"))
        templates = templates.for_task(value.fields if value is not None else ())
        function = metric_scorer(metric, config_settings.get("api", "chat"), templates)
    if function is not None:
        config_settings["scorer"] = f"{function.__module__}:{function.__qualname__}"
    config = StudyConfig.of(task=task if isinstance(task, str) else "", **config_settings)
    prepared = prepare(config, task=value, scorer=function)
    result = await execute(prepared, say=say)
    if result.spend.cached_calls:
        say(
            f"{result.spend.cached_calls:,} answers came from the response cache "
            f"{cache_path(prepared.config.outputs)} (asked before, not paid again); "
            "no_cache=True asks the model again"
        )
    return result


def optimize(
    task: str | Task | Iterable[Example | Mapping[str, Any]],
    **options: Any,
) -> StudyResult:
    """`optimize_async`, run to its end from code without an event loop, or from a notebook
    (whose loop is running: the study then runs on a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(optimize_async(task, **options))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, optimize_async(task, **options)).result()
