"""Scoring an instruction on one example: the `Scorer` interface and the scorers.

Scoring (docs/design.md, "Scoring"; APE section 3.2) sends the target model the scoring template
(``instruction + "\\n\\nInput: x\\nOutput:"`` by default, overridable in the templates file),
in the format `engine.study.prompting` builds (scoring demos, the chat format):

- *execution accuracy* (``scoring = "exec"``): greedy answer (temperature 0), stop at the end of
  the line, at most 16 tokens, read as a chat model writes it (`read_answer`: its first line,
  without a label, quotes or a trailing period), the task's metric against the accepted outputs;
- *log-probability* (``scoring = "logprob"``): exp(mean token log-prob) of the example's first
  accepted output after the prompt, from completions ``echo`` + ``logprobs`` (exact). An
  endpoint without echo but with chat ``logprobs`` (with ``api = "chat"``) is scored on the greedy
  chat answer instead: exp(mean token log-prob) of that answer times its metric, so an answer
  the task does not accept scores 0 (the probability of the accepted output is not observable
  there; this is a confidence-weighted accuracy, and the study says so before it starts);
- *custom* (``scorer = "module:function"``): ``async def f(instruction, example, client) ->
  float`` in [0, 1]; `client` is the target `LLMClient`, or the `EndpointPool` of several
  target endpoints (its calls' tokens are counted).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from engine.errors import EndpointError, ScorerError
from engine.llm.client import LLMClient
from engine.llm.pacing.gate import CallHeldBack
from engine.llm.pacing.limiter import RateLimiter
from engine.llm.pool.endpoint_pool import EndpointPool
from engine.llm.probing.capabilities import Capability, require_capability
from engine.llm.protocol.results import Completion, ContinuationLogprob, Usage
from engine.propose import Templates
from engine.study.budgets import PriceTable
from engine.study.prompting import Demos, ScoringPrompt
from engine.task.metrics import metric_function, read_answer
from engine.task.types import Example

__all__ = [
    "SCORING_MAX_TOKENS",
    "SCORING_STOP",
    "CachingScorer",
    "ClientScorer",
    "CustomScorer",
    "Grade",
    "PacedScorer",
    "Score",
    "Scorer",
    "ScorerFunction",
    "example_text",
    "logprob_path",
]

SCORING_MAX_TOKENS = 16
SCORING_STOP = ("\n",)
ScorerFunction = Callable[[str, Example, Any], Awaitable[float]]
#: A task's checks of an answer (`engine.settings.checks`): (answer, example) -> (reward in
#: [0, 1], why it is below 1 when a check could not read the answer or refused it).
Grade = Callable[[str, Example], tuple[float, str]]


@dataclass(frozen=True, slots=True)
class Score:
    """The reward of one scoring call and what it cost (`cached`: answered by the cache)."""

    reward: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    model: str = ""
    answer: str = ""  # what the model answered (stripped), when it answered in text
    note: str = ""  # why the task's checks gave less than 1, when they said (bad JSON, ...)
    # a judge's call within this one (engine.study.judging): its model and tokens, which the
    # tokens above include; it is priced at the judge model's price
    judge: tuple[str, int, int] | None = None

    def usd(self, prices: PriceTable, default_model: str) -> float:
        """What the call cost: nothing when cached; the target's tokens at its model's price,
        a judge's at the judge's."""
        if self.cached:
            return 0.0
        model = self.model or default_model
        if self.judge is None:
            return prices.cost(model, self.prompt_tokens, self.completion_tokens)
        judge_model, judge_in, judge_out = self.judge
        target = prices.cost(
            model, self.prompt_tokens - judge_in, self.completion_tokens - judge_out
        )
        return target + prices.cost(judge_model, judge_in, judge_out)


class Scorer(Protocol):
    """What the study calls to score a candidate."""

    async def score(self, instruction: str, example: Example, demos: Demos = None) -> Score:
        """Called once per pull, and per example of the final evaluation: the reward of
        `instruction` on `example` in [0, 1], shown the candidate's own `demos` when it has
        them (the demo search; None: the study's scoring demos). A call that fails for good
        raises `EndpointError` (the pull goes back to the pool; it is never scored as 0); a
        paused study's call not yet sent raises `CallHeldBack`; the user's own scoring code
        failing raises `ScorerError` (the study stops)."""
        ...


@runtime_checkable
class PacedScorer(Scorer, Protocol):
    """A scorer whose calls wait at a rate limiter (its client's)."""

    @property
    def limiter(self) -> RateLimiter | None:
        """The limiter its calls wait at, or None when it has none to wait at (the
        dispatcher waits there for a permit before it chooses the pull to send)."""
        ...


@runtime_checkable
class CachingScorer(Scorer, Protocol):
    """A scorer that may already hold an answer (the response cache)."""

    def cached(self, instruction: str, example: Example, demos: Demos = None) -> Score | None:
        """Called before a scoring call is started: the answer held for it, without a call
        (the dispatcher takes such answers at once, so the policy's next choice knows them)."""
        ...


class ClientScorer:
    """Execution-accuracy or log-probability scoring through one client.

    `logprobs` is where log-probabilities come from: ``"echo"`` (completions echo, exact) or
    ``"chat"`` (the greedy chat answer's own tokens; see the module docstring). `grade`, when
    given, scores the answer in place of the metric (a task's checks: the whole answer is
    read, up to `max_tokens` and `stop`)."""

    def __init__(
        self,
        client: LLMClient | EndpointPool,
        *,
        metric: str,
        mode: str = "exec",
        api: str = "chat",
        template: str = Templates().scoring,
        logprobs: str = "echo",
        asking: ScoringPrompt | None = None,
        grade: Grade | None = None,
        max_tokens: int = SCORING_MAX_TOKENS,
        stop: tuple[str, ...] = SCORING_STOP,
    ) -> None:
        self.client = client
        self.mode = mode
        self.api = api
        self.logprobs = logprobs
        self.metric = metric
        self.asking = asking or ScoringPrompt(Templates(scoring=template))
        self.max_tokens = max_tokens
        self.stop = list(stop) or None
        self._metric = metric_function(metric)
        self._grade = grade

    @property
    def limiter(self) -> RateLimiter | None:
        return self.client.limiter

    def prompt(self, instruction: str, example: Example, demos: Demos = None) -> str:
        asking = self.asking.with_demos(demos)
        return asking.completion(instruction, example.input, example.fields)

    async def score(self, instruction: str, example: Example, demos: Demos = None) -> Score:
        prompt = self.prompt(instruction, example, demos)
        if self.mode == "logprob" and self.logprobs == "echo":
            answer = example.outputs[0] if example.outputs else ""
            result = await self.client.continuation_logprob(prompt, " " + answer)
            return Score(
                result.score,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                latency_s=result.latency_s,
                model=result.model or self.client.model,
            )
        with_logprobs = self.mode == "logprob"
        completion: Completion
        if self.api == "chat" or with_logprobs:
            completion = await self.client.chat(
                self.asking.with_demos(demos).messages(instruction, example.input, example.fields),
                max_tokens=self.max_tokens,
                temperature=0.0,
                stop=self.stop,
                logprobs=with_logprobs,
            )
        else:
            completion = await self.client.complete(
                prompt, max_tokens=self.max_tokens, temperature=0.0, stop=self.stop
            )
        answer = completion.text.strip()
        note = ""
        if self._grade is not None:
            reward, note = self._grade(answer, example)
        else:
            reward = self._metric(read_answer(answer, self.metric), example)
        if with_logprobs:
            reward *= self._confidence(completion)
        return Score(
            reward,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            latency_s=completion.latency_s,
            model=completion.model,
            answer=answer,
            note=note,
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


async def logprob_path(client: LLMClient | EndpointPool, api: str) -> str:
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


class _MeteredClient:
    """The target client as the custom scorer sees it: every call's usage is added up, so the
    study counts the tokens and dollars the scorer spends."""

    def __init__(self, client: LLMClient | EndpointPool) -> None:
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


def example_text(example: Example) -> str:
    """Where an example is and what it holds, for a message about it: ``line 3 (input
    'France', expected 'Paris')``."""
    key = example.key
    place = key if key.startswith(("line ", "[")) else f"example {key}" if key else "an example"
    shown = example.input if len(example.input) <= 60 else example.input[:59] + "…"
    expected = f", expected {example.outputs[0]!r}" if example.outputs else ""
    return f"{place} (input {shown!r}{expected})"


class CustomScorer:
    """A user's ``async (instruction, example, client) -> float`` as a study scorer. Its calls
    to the endpoint fail as any call does (`EndpointError`). The function itself raising, or
    returning something other than a number in [0, 1], is the user's code failing, not the
    endpoint: a `ScorerError` naming the example, and the study stops at the first one."""

    def __init__(
        self, function: ScorerFunction, client: LLMClient | EndpointPool, spec: str
    ) -> None:
        self.function = function
        self.client = client
        self.spec = spec

    @property
    def limiter(self) -> RateLimiter | None:
        return self.client.limiter

    async def score(self, instruction: str, example: Example, demos: Demos = None) -> Score:
        """The function's reward (it builds its own prompt: a demo set is not its to show,
        and the demo search is refused with a custom scorer)."""
        metered = _MeteredClient(self.client)
        try:
            value = await self.function(instruction, example, metered)
        except (EndpointError, CallHeldBack):  # a paused study takes its call back
            raise
        except ScorerError:
            raise
        except Exception as error:
            raise ScorerError(
                f"scorer {self.spec!r} raised {type(error).__name__}: {error} -- on "
                f"{example_text(example)}; fix the function and run again"
            ) from error
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= 1
        ):
            raise ScorerError(
                f"scorer {self.spec!r} returned {value!r} on {example_text(example)}; it must "
                "return a number in [0, 1]"
            )
        return Score(
            float(value),
            prompt_tokens=metered.prompt_tokens,
            completion_tokens=metered.completion_tokens,
            latency_s=metered.latency_s,
            model=self.client.model,
        )
