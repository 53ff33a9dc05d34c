"""How an endpoint wants its parameters, learned once from its own refusals.

Servers that speak the OpenAI protocol differ in what they take. OpenAI's reasoning models
refuse ``max_tokens`` (they take ``max_completion_tokens``), any temperature but the default, and
``stop``; Anthropic's OpenAI-compatible endpoint and llama.cpp's ``llama-server`` refuse ``n`` > 1,
and llama-cpp-python's server ignores it (one choice comes back). A call that meets such a
refusal is not a failure: the client notes the change in its `Dialect`, rewrites the request and
sends it again, and every later call is built that way from the start. A stop sequence the
server will not take is applied to the answer instead; choices it will not give in one request
are asked for one per call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from engine.llm.errors import LLMError, RequestRejectedError
from engine.llm.protocol.answers import Parsed
from engine.llm.protocol.request import Request
from engine.llm.protocol.results import Completion, Usage

__all__ = ["Adapting", "Dialect", "merge_choices", "single_choice_requests", "stopping"]

_MAX_ADAPTATIONS = 5  # each one changes the dialect for good: a few at most per endpoint

_UNSUPPORTED_CODES = frozenset({"unsupported_parameter", "unsupported_value"})
_UNSUPPORTED = re.compile(r"unsupported|not supported|does not support|only the default")
_STOP = re.compile(r"['\"`]stop['\"`]")
_CHOICE_WORDS = re.compile(r"\bn\b|choice|\bn\s*=|n must be|completions? choice", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The parameters an endpoint takes. The default is the OpenAI API reference's."""

    max_tokens_field: str = "max_tokens"  # "max_completion_tokens": OpenAI reasoning models
    temperature: bool = True  # False: only the model's default temperature is taken
    stop: bool = True  # False: stop sequences are applied to the answer by the client
    choices: bool | None = None  # n > 1 in one request: None = not tried yet

    @property
    def rewrites(self) -> bool:
        """Does a request built for the default dialect need rewriting?"""
        return self.max_tokens_field != "max_tokens" or not self.temperature or not self.stop

    def describe(self) -> str:
        """The adaptations in force, for a note on screen ('' for none)."""
        parts = []
        if self.max_tokens_field != "max_tokens":
            parts.append(f"{self.max_tokens_field} instead of max_tokens")
        if not self.temperature:
            parts.append("no temperature (the model's default)")
        if not self.stop:
            parts.append("stop sequences applied by the client")
        if self.choices is False:
            parts.append("one choice per request")
        return ", ".join(parts)

    def adapted(self, error: LLMError, request: Request) -> Dialect | None:
        """The dialect that avoids `error` for `request`, or None when the refusal is not about
        a parameter the client can do without."""
        if not isinstance(error, RequestRejectedError) or error.status not in (400, 422):
            return None
        payload = _payload(request)
        param = (getattr(error, "param", None) or "").lower()
        text = str(error)
        said = text.lower()
        # a value out of range is the caller's mistake; only "not supported" is adapted to
        unsupported = error.code in _UNSUPPORTED_CODES or bool(_UNSUPPORTED.search(said))
        if "max_tokens" in payload and (
            "max_completion_tokens" in said or (unsupported and param == "max_tokens")
        ):
            return dataclasses.replace(self, max_tokens_field="max_completion_tokens")
        if unsupported and "temperature" in payload and "temperature" in (param or said):
            return dataclasses.replace(self, temperature=False)
        if unsupported and "stop" in payload and (param == "stop" or _STOP.search(said)):
            return dataclasses.replace(self, stop=False)
        if request.choices > 1 and (param == "n" or _CHOICE_WORDS.search(text)):
            return dataclasses.replace(self, choices=False)
        return None

    def rewrite(self, request: Request) -> Request:
        """`request` as this dialect wants it (the same request when nothing changes)."""
        if not self.rewrites:
            return request
        payload = _payload(request)
        parse = request.parse
        if self.max_tokens_field != "max_tokens" and "max_tokens" in payload:
            payload[self.max_tokens_field] = payload.pop("max_tokens")
        if not self.temperature:
            payload.pop("temperature", None)
        stops = payload.pop("stop", None) if not self.stop else None
        if stops:
            parse = stopping(parse, tuple(stops))
        return Request(
            request.path,
            _encode(payload),
            request.prompt_tokens,
            request.output_tokens,
            parse,
            request.choices,
        )


def single_choice_requests(request: Request, count: int) -> list[Request]:
    """`count` requests of one choice each in place of one asking for ``n``; a seeded request
    gets a seed per choice (the same seed would give the same answer `count` times)."""
    payload = _payload(request)
    payload.pop("n", None)
    per_choice = max(1, request.output_tokens // max(1, request.choices))
    seed = payload.get("seed")
    singles = []
    for index in range(count):
        if isinstance(seed, int):
            payload["seed"] = seed + index
        singles.append(
            Request(
                request.path, _encode(payload), request.prompt_tokens, per_choice, request.parse
            )
        )
    return singles


def merge_choices(parts: Sequence[Completion]) -> Completion:
    """One answer holding the choices of `parts`, in order, with their usage added up."""
    first = parts[0]
    prompt = sum(part.usage.prompt_tokens for part in parts)
    completion = sum(part.usage.completion_tokens for part in parts)
    logprobs: tuple[Any, ...] = ()
    if all(part.logprobs for part in parts):
        logprobs = tuple(block for part in parts for block in part.logprobs)
    return Completion(
        texts=tuple(text for part in parts for text in part.texts),
        finish_reasons=tuple(reason for part in parts for reason in part.finish_reasons),
        usage=Usage(prompt, completion, prompt + completion),
        latency_s=max(part.latency_s for part in parts),
        attempts=sum(part.attempts for part in parts),
        endpoint=first.endpoint,
        model=first.model,
        logprobs=logprobs,
    )


def stopping(parse: Callable[[Any], Parsed], stops: tuple[str, ...]) -> Callable[[Any], Parsed]:
    """`parse`, with each text cut at the first of `stops` (as the server would have)."""

    def parse_and_stop(data: Any) -> Parsed:
        texts, reasons, logprobs, usage = parse(data)
        cut = []
        for text in texts:
            ends = [index for index in (text.find(stop) for stop in stops) if index >= 0]
            cut.append(text[: min(ends)] if ends else text)
        return tuple(cut), reasons, logprobs, usage

    return parse_and_stop


def _payload(request: Request) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(request.body)
    return payload


def _encode(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


Send = Callable[[Request], Awaitable[Completion]]


class Adapting:
    """The dialect of one endpoint, and the sending loop that learns it from refusals."""

    __slots__ = ("dialect", "endpoint", "notes")

    def __init__(self, endpoint: str, dialect: Dialect | None = None) -> None:
        self.endpoint = endpoint
        self.dialect = dialect or Dialect()
        self.notes: list[str] = []  # what was learned and why, in the server's words

    async def send(
        self, request: Request, send: Send, refused: LLMError | None = None
    ) -> Completion:
        """`send(request)`, rewritten as the endpoint wants it, learning from each refusal that
        names a parameter the client can do without (`refused`: one the request already met)."""
        if refused is not None:
            dialect = self.dialect.adapted(refused, self.dialect.rewrite(request))
            if dialect is None:
                raise refused
            self._learn(dialect, str(refused))
        request = self.dialect.rewrite(request)
        for _ in range(_MAX_ADAPTATIONS):
            if request.choices > 1 and self.dialect.choices is False:
                return await self._one_per_call(request, request.choices, send, ())
            try:
                result = await send(request)
            except LLMError as error:
                dialect = self.dialect.adapted(error, request)
                if dialect is None:
                    raise
                self._learn(dialect, str(error))
                request = dialect.rewrite(request)
                continue
            if request.choices > 1:
                if len(result.texts) >= request.choices:
                    self.dialect = dataclasses.replace(self.dialect, choices=True)
                    return result
                self._learn(
                    dataclasses.replace(self.dialect, choices=False),
                    f"asked for {request.choices} choices, got {len(result.texts)}",
                )
                missing = request.choices - len(result.texts)
                return await self._one_per_call(request, missing, send, (result,))
            return result
        return await send(request)

    async def _one_per_call(
        self, request: Request, count: int, send: Send, have: tuple[Completion, ...]
    ) -> Completion:
        parts = await asyncio.gather(*(send(one) for one in single_choice_requests(request, count)))
        return merge_choices([*have, *parts])

    def _learn(self, dialect: Dialect, why: str) -> None:
        self.dialect = dialect
        self.notes.append(f"{dialect.describe()} ({why[:300]})")
