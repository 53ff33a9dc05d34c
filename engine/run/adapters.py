"""Scorers, and the builders that fit the scorer and the proposer of `engine.propose` to the
study's seams (`engine.run._base`) from a `StudyConfig`.

Scoring (DESIGN.md section 1, APE section 3.2) sends the target model the scoring template
(``instruction + "\\n\\nInput: x\\nOutput:"`` by default, overridable in the templates file):

- *execution accuracy* (``scoring = "exec"``): greedy answer (temperature 0), stop at the end of
  the line, at most 16 tokens, the task's metric against the accepted outputs;
- *log-probability* (``scoring = "logprob"``): exp(mean token log-prob) of the example's first
  accepted output after the prompt, from completions ``echo`` + ``logprobs`` (exact). An
  endpoint without echo but with chat ``logprobs`` (with ``api = "chat"``) is scored on the greedy
  chat answer instead: exp(mean token log-prob) of that answer times its metric, so an answer
  the task does not accept scores 0 (the probability of the accepted output is not observable
  there; this is a confidence-weighted accuracy, and the study says so before it starts);
- *custom* (``scorer = "module:function"``): ``async def f(instruction, example, client) ->
  float`` in [0, 1]; `client` is the target `LLMClient` (its calls' tokens are counted).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, EndpointError
from engine.llm.capabilities import Capability, require_capability
from engine.llm.client import LLMClient
from engine.llm.gate import CallHeldBack
from engine.llm.results import Completion, ContinuationLogprob, Usage
from engine.propose import Deduplicating, Proposer, Templates, normalise_instruction
from engine.run._base import ProposerLike, Score, ScorerLike
from engine.run.config import StudyConfig
from engine.run.response_cache import CachedProposer, CachedScorer, ResponseCache
from engine.task.metrics import metric_function
from engine.task.types import Example

__all__ = [
    "SCORING_MAX_TOKENS",
    "ClientScorer",
    "CustomScorer",
    "ScorerFunction",
    "build_proposer",
    "build_scorer",
    "load_scorer_function",
    "logprob_path",
    "normalise_instruction",
]

SCORING_MAX_TOKENS = 16
SCORING_STOP = ("\n",)
ScorerFunction = Callable[[str, Example, Any], Awaitable[float]]


class ClientScorer:
    """Execution-accuracy or log-probability scoring through one client.

    `logprobs` is where log-probabilities come from: ``"echo"`` (completions echo, exact) or
    ``"chat"`` (the greedy chat answer's own tokens; see the module docstring)."""

    def __init__(
        self,
        client: LLMClient,
        *,
        metric: str,
        mode: str = "exec",
        api: str = "chat",
        template: str = Templates().scoring,
        logprobs: str = "echo",
    ) -> None:
        self.client = client
        self.mode = mode
        self.api = api
        self.template = template
        self.logprobs = logprobs
        self._metric = metric_function(metric)

    def prompt(self, instruction: str, example: Example) -> str:
        return self.template.format(instruction=instruction, input=example.input)

    async def score(self, instruction: str, example: Example) -> Score:
        prompt = self.prompt(instruction, example)
        if self.mode == "logprob" and self.logprobs == "echo":
            answer = example.outputs[0] if example.outputs else ""
            result = await self.client.continuation_logprob(prompt, " " + answer)
            return Score(
                result.score,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                latency_s=result.latency_s,
                model=self.client.config.model,
            )
        with_logprobs = self.mode == "logprob"
        completion: Completion
        if self.api == "chat" or with_logprobs:
            completion = await self.client.chat(
                [{"role": "user", "content": prompt}],
                max_tokens=SCORING_MAX_TOKENS,
                temperature=0.0,
                stop=list(SCORING_STOP),
                logprobs=with_logprobs,
            )
        else:
            completion = await self.client.complete(
                prompt, max_tokens=SCORING_MAX_TOKENS, temperature=0.0, stop=list(SCORING_STOP)
            )
        reward = self._metric(completion.text.strip(), example)
        if with_logprobs:
            reward *= self._confidence(completion)
        return Score(
            reward,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            latency_s=completion.latency_s,
            model=completion.model,
        )

    def _confidence(self, completion: Completion) -> float:
        """exp(mean token log-prob) of the chat answer's tokens."""
        block = completion.logprobs[0] if completion.logprobs else None
        values = [v for v in (block.logprobs if block else ()) if v is not None]
        if block is None or (block.tokens and not values):
            raise EndpointError(
                f"endpoint {self.client.name!r} returned no log-probabilities for a chat answer "
                "asked with logprobs=true; use execution-accuracy scoring",
                endpoint=self.client.name,
                code="no_chat_logprobs",
            )
        return math.exp(math.fsum(values) / len(values)) if values else 1.0


async def logprob_path(client: LLMClient, api: str) -> str:
    """Where log-probability scoring gets its numbers on this endpoint: "echo" when it echoes
    prompt log-probs, else "chat" when `api` is chat and chat answers carry log-probs; else an
    `EndpointError` naming the endpoint, before any scoring call."""
    capabilities = await client.capabilities()
    if capabilities.prompt_logprobs:
        return "echo"
    if api == "chat" and capabilities.chat_logprobs:
        return "chat"
    require_capability(capabilities, Capability.PROMPT_LOGPROBS)
    raise AssertionError("unreachable: require_capability raised")  # pragma: no cover


# -- the custom scorer ---------------------------------------------------------------------------


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


class _MeteredClient:
    """The target client as the custom scorer sees it: every call's usage is added up, so the
    study counts the tokens and dollars the scorer spends."""

    def __init__(self, client: LLMClient) -> None:
        self._client = client
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency_s = 0.0

    def _count(self, usage: Usage, latency_s: float) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.latency_s += latency_s

    async def chat(self, *args: Any, **kwargs: Any) -> Completion:
        result = await self._client.chat(*args, **kwargs)
        self._count(result.usage, result.latency_s)
        return result

    async def complete(self, *args: Any, **kwargs: Any) -> Completion:
        result = await self._client.complete(*args, **kwargs)
        self._count(result.usage, result.latency_s)
        return result

    async def continuation_logprob(self, prompt: str, continuation: str) -> ContinuationLogprob:
        result = await self._client.continuation_logprob(prompt, continuation)
        self._count(result.usage, result.latency_s)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class CustomScorer:
    """A user's ``async (instruction, example, client) -> float`` as a study scorer. A call
    that raises or returns something other than a number in [0, 1] is a failed call (never a
    0): it is counted, and the study stops when failures pass its threshold."""

    def __init__(self, function: ScorerFunction, client: LLMClient, spec: str) -> None:
        self.function = function
        self.client = client
        self.spec = spec

    async def score(self, instruction: str, example: Example) -> Score:
        metered = _MeteredClient(self.client)
        try:
            value = await self.function(instruction, example, metered)
        except (EndpointError, CallHeldBack):  # a paused study takes its call back
            raise
        except Exception as error:
            raise EndpointError(
                f"custom scorer {self.spec!r} raised {type(error).__name__}: {error}",
                code="custom_scorer",
            ) from error
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= 1
        ):
            raise EndpointError(
                f"custom scorer {self.spec!r} returned {value!r} for example {example.key or '?'}"
                "; it must return a float in [0, 1]",
                code="custom_scorer",
            )
        return Score(
            float(value),
            prompt_tokens=metered.prompt_tokens,
            completion_tokens=metered.completion_tokens,
            latency_s=metered.latency_s,
            model=self.client.config.model,
        )


# -- builders ------------------------------------------------------------------------------------


async def build_scorer(
    config: StudyConfig,
    client: LLMClient,
    *,
    metric: str,
    templates: Templates,
    custom: ScorerFunction | None = None,
    cache: ResponseCache | None = None,
    endpoint: str = "",
    say: Callable[[str], None] = print,
) -> ScorerLike:
    """The study's scorer for `config`, checked against the endpoint before any scoring call."""
    identity: dict[str, Any]
    scorer: ScorerLike
    if custom is not None and config.scorer is not None:
        scorer = CustomScorer(custom, client, config.scorer)
        identity = {"mode": "custom", "scorer": config.scorer}
    else:
        path = "echo"
        if config.scoring == "logprob":
            path = await logprob_path(client, config.api)
            if path == "chat":
                say(
                    f"endpoint {client.name!r} has no prompt log-probabilities (echo); "
                    "log-probability scoring uses the chat answer's own log-probs instead: "
                    "exp(mean log-prob) of the greedy answer when the task accepts it, else 0"
                )
        scorer = ClientScorer(
            client,
            metric=metric,
            mode=config.scoring,
            api=config.api,
            template=templates.scoring,
            logprobs=path,
        )
        identity = {
            "mode": config.scoring,
            "logprobs": path if config.scoring == "logprob" else None,
            "api": config.api,
            "template": templates.scoring,
            "max_tokens": SCORING_MAX_TOKENS,
            "temperature": 0.0,
            "stop": list(SCORING_STOP),
            "metric": metric,
        }
    if cache is None:
        return scorer
    return CachedScorer(
        scorer, cache, {"kind": "score", "model": config.model, "base_url": endpoint, **identity}
    )


async def build_proposer(
    config: StudyConfig,
    client: LLMClient,
    demos: tuple[Example, ...],
    *,
    templates: Templates,
    cache: ResponseCache | None = None,
    endpoint: str = "",
    task: str = "",
    known: Iterable[str] = (),
) -> ProposerLike:
    """The study's proposer: the template the config names (insert is checked against the
    endpoint now), the response cache, then de-duplication against `known` and everything
    proposed since."""
    proposer = Proposer(
        client,
        demos,
        templates=templates,
        mode=config.proposal_template,
        api=config.api,
        seed=config.seed,
        demos_per_call=config.demos_per_proposal,
        max_chars=config.max_instruction_chars,
    )
    await proposer.check()
    inner: ProposerLike = proposer
    if cache is not None:
        request = {
            "kind": "propose",
            "model": config.proposal_model or config.model,
            "base_url": endpoint,
            "seed": config.seed,
            "task": task,
            **proposer.identity(),
        }
        inner = CachedProposer(proposer, cache, request)
    return Deduplicating(inner, similarity=config.duplicate_similarity, known=known)
