"""The study's scorer from its config: the client scorer (execution accuracy or log-probability,
checked against the endpoint before any scoring call -- against every endpoint of a pool, which
must agree in where log-probabilities come from -- and asked in the format the config names:
scoring demos, the chat format), the judge scorer, or a user's custom scorer imported by
name; then the response cache around it (`engine.study.scoring` has the scorers themselves)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import ConfigError, setting
from engine.llm.client import LLMClient
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.llm.probing.capabilities import Capability
from engine.propose import Templates
from engine.settings import ScoringSettings
from engine.settings.checks import Check, grader
from engine.study.cache import CachedScorer, ResponseCache
from engine.study.judging import JUDGE_ANSWER_TOKENS, JudgeScorer, load_rubric
from engine.study.prompting import ScoringPrompt, pick_demos, scoring_demo_count
from engine.study.scoring import (
    SCORING_MAX_TOKENS,
    SCORING_STOP,
    ClientScorer,
    CustomScorer,
    Scorer,
    ScorerFunction,
    logprob_path,
)
from engine.task.types import Example

__all__ = ["build_scorer", "load_scorer_function"]


def _import(module_name: str, where: str) -> Any:
    """The module `module_name`, or the file it names; the current directory is searched too
    (so that `--scorer myscorers:f` finds ./myscorers.py)."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        if not (module_name.endswith(".py") or "/" in module_name):
            return importlib.import_module(module_name)
        path = Path(module_name)
        if not path.is_file():
            raise ConfigError(f"{where}: no file {module_name!r}")
        spec = importlib.util.spec_from_file_location(f"_ape_scorer_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{where}: cannot load {module_name!r} as Python")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            f"{where}: importing {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)


def load_scorer_function(spec: str, *, field: str = "scorer") -> ScorerFunction:
    """Import ``module:function`` (or ``path/file.py:function``) and check that it is
    ``async def f(instruction, example, client) -> float``; a `ConfigError` naming `field`
    otherwise."""
    where = f"{field} {spec!r}"
    module_name, _, name = spec.strip().rpartition(":")
    if not module_name or not name:
        raise ConfigError(f"{where}: give it as 'module:function' or 'file.py:function'")
    module = _import(module_name, where)
    function = module
    for part in name.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ConfigError(f"{where}: {module_name!r} has no attribute {name!r}")
    call = function if inspect.isfunction(function) else getattr(function, "__call__", None)  # noqa: B004
    if not callable(function) or not inspect.iscoroutinefunction(call):
        raise ConfigError(
            f"{where}: must be an async function 'async def {name}(instruction, example, "
            f"client) -> float' (got {type(function).__name__})"
        )
    try:
        inspect.signature(function).bind("instruction", None, None)
    except TypeError as error:
        raise ConfigError(
            f"{where}: must take three arguments (instruction, example, client): {error}"
        ) from None
    return function  # type: ignore[no-any-return]


async def _logprob_path(client: LLMClient | EndpointPool, api: str) -> str:
    """`logprob_path` of the endpoint, or of every endpoint of a pool: endpoints that differ in
    it are refused, naming them (their scores would not be comparable)."""
    if isinstance(client, EndpointPool):
        await client.same(Capability.PROMPT_LOGPROBS)
        if api == "chat" and not (await client.capabilities()).prompt_logprobs:
            await client.same(Capability.CHAT_LOGPROBS)
    return await logprob_path(client, api)


def _judge_scorer(
    scoring: ScoringSettings,
    client: LLMClient | EndpointPool,
    judge: LLMClient | None,
    asking: ScoringPrompt,
    api: str,
) -> tuple[Scorer, dict[str, Any]]:
    """The judge scorer, and what defines its answers (the response cache's key)."""
    if judge is None or scoring.rubric is None:
        raise ConfigError(f"{setting('judge_rubric')}: judge scoring needs a rubric")
    rubric = load_rubric(scoring.rubric)
    identity = {
        "mode": "judge",
        "api": api,
        "judge": judge.config.model,
        "judge_url": judge.config.base_url,
        "rubric": [rubric.template, rubric.reply, rubric.low, rubric.high],
        "template": asking.templates.scoring,
        "max_tokens": JUDGE_ANSWER_TOKENS,
        **asking.identity(),
    }
    return JudgeScorer(client, judge, rubric, asking, api=api), identity


#: The most tokens of an answer scored by checks (a JSON object, several lines) by default.
CHECKED_ANSWER_TOKENS = 256


def answer_limits(scoring: ScoringSettings, checks: Sequence[Check]) -> tuple[int, tuple[str, ...]]:
    """The most tokens of the target's answer and where it stops: the end of its first line
    (the metrics read no more), or, with checks, all of it."""
    if checks:
        return scoring.answer_tokens or CHECKED_ANSWER_TOKENS, ()
    return scoring.answer_tokens or SCORING_MAX_TOKENS, SCORING_STOP


async def _client_scorer(
    scoring: ScoringSettings,
    client: LLMClient | EndpointPool,
    metric: str,
    asking: ScoringPrompt,
    api: str,
    say: Callable[[str], None],
    checks: Sequence[Check],
) -> tuple[Scorer, dict[str, Any]]:
    """Execution accuracy (by the metric, or by the checks) or log-probability, checked
    against the endpoint; and what defines its answers (the response cache's key)."""
    mode = scoring.mode
    path = "echo"
    if mode == "logprob":
        path = await _logprob_path(client, api)
        if path == "chat":
            say(
                f"endpoint {client.name!r} has no prompt log-probabilities (echo); "
                "log-probability scoring uses the chat answer's own log-probs instead: "
                "exp(mean log-prob) of the greedy answer when the task accepts it, else 0"
            )
    max_tokens, stop = answer_limits(scoring, checks)
    scorer = ClientScorer(
        client,
        metric=metric,
        mode=mode,
        api=api,
        logprobs=path,
        asking=asking,
        grade=grader(checks, metric) if checks else None,
        max_tokens=max_tokens,
        stop=stop,
    )
    identity = {
        "mode": mode,
        "logprobs": path if mode == "logprob" else None,
        "api": api,
        "template": asking.templates.scoring,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stop": list(stop),
        "metric": metric,
        **asking.identity(),
    }
    if checks:
        identity["checks"] = msgspec.to_builtins(list(checks))
    return scorer, identity


async def build_scorer(
    scoring: ScoringSettings,
    client: LLMClient | EndpointPool,
    *,
    api: str,
    model: str,
    seed: int,
    metric: str,
    templates: Templates,
    custom: ScorerFunction | None = None,
    cache: ResponseCache | None = None,
    endpoint: str = "",
    say: Callable[[str], None] = print,
    demos: tuple[Example, ...] = (),
    judge: LLMClient | None = None,
    checks: Sequence[Check] = (),
) -> Scorer:
    """The study's scorer, checked against the endpoint before any scoring call; the target
    `model` speaks `api`; its scoring demos are drawn once from `demos` (the demo pool) by the
    study's `seed`."""
    identity: dict[str, Any]
    scorer: Scorer
    asking = ScoringPrompt(
        templates,
        pick_demos(demos, scoring_demo_count(scoring.demos, api), seed),
        scoring.chat_format,
    )
    if custom is not None and scoring.scorer is not None:
        scorer = CustomScorer(custom, client, scoring.scorer)
        identity = {"mode": "custom", "scorer": scoring.scorer}
    elif scoring.mode == "judge":
        scorer, identity = _judge_scorer(scoring, client, judge, asking, api)
    else:
        scorer, identity = await _client_scorer(scoring, client, metric, asking, api, say, checks)
    if cache is None:
        return scorer
    return CachedScorer(
        scorer, cache, {"kind": "score", "model": model, "base_url": endpoint, **identity}
    )
