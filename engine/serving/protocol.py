"""The OpenAI wire protocol the server speaks, apart from what the text says.

References: OpenAI API reference, "Chat Completions" (``POST /v1/chat/completions``: messages,
max_tokens / max_completion_tokens, n, stop, temperature, logprobs + top_logprobs; answer with
``choices[].message`` and ``choices[].logprobs.content[]``), "Completions" (legacy ``POST
/v1/completions``: prompt string or list, echo, logprobs as an int, ``choices[].logprobs`` with
``tokens``, ``token_logprobs``, ``text_offset``, ``top_logprobs``) and "Error codes" (``{"error":
{"message", "type", "param", "code"}}``).

This module parses and validates request bodies into a `GenerationRequest`, and builds answers
from what a `Backend` generated. A backend decides only the text and its log-probabilities: the
simulated world (`engine.sim.world`) is one, a local model (`engine.local`) another.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ApiError",
    "Backend",
    "Generation",
    "GenerationRequest",
    "ParsedCompletions",
    "Scored",
    "chat_prompt_tokens",
    "chat_response",
    "clamp_logprob",
    "completion_logprobs",
    "completions_response",
    "error_body",
    "models_response",
    "parse_chat",
    "parse_completions",
    "usage",
]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MESSAGE_OVERHEAD_TOKENS = 3  # per message, and once for the reply's priming, as OpenAI counts
DEFAULT_COMPLETIONS_MAX_TOKENS = 16  # the legacy API's default
DEFAULT_CHAT_MAX_TOKENS = 4096


class ApiError(Exception):
    """An error answer: HTTP status and the OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# -- what a backend sees and returns -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One prompt to continue `n` times. For chat, `prompt` is the last user message's content
    and `messages` the whole conversation as (role, content)."""

    api: str  # "chat" or "completions"
    model: str
    prompt: str
    max_tokens: int
    n: int = 1
    temperature: float = 1.0
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # alternatives per token wanted; None: no log-probs
    seed: int | None = None
    messages: tuple[tuple[str, str], ...] = ()
    suffix: str = ""  # completions fill-in-the-middle: the text after the insertion


@dataclass(frozen=True, slots=True)
class Scored:
    """A token with its log-probability and the most likely alternatives (token first)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Generation:
    """One choice: its text, why it ended, and its tokens with log-probs when they were asked
    for (they concatenate to `text`)."""

    text: str
    finish_reason: str = "stop"
    tokens: tuple[Scored, ...] = ()


class Backend(Protocol):
    """What answers: the text of each choice and the log-probabilities of a given text. The
    server owns everything else (keys, parsing, limits, faults, latency, answer shapes); an
    `ApiError` a backend raises is answered as it is (a full queue's 429, a long prompt's 400).
    """

    def tokenize(self, text: str) -> list[str]:
        """Tokens that concatenate to `text`. Called on every request that parses, before it
        is admitted (its prompt tokens count toward usage and the tokens-per-minute limit),
        then on each generated text; it may run while a generation does."""
        ...

    async def generate(self, request: GenerationRequest) -> Sequence[Generation]:
        """`request.n` choices, each cut at `stop` and `max_tokens`. Called once per chat
        request and once per prompt of a completions request, after the key, the model, the
        quota, the rate limits and the fault draw have let the request through."""
        ...

    async def prompt_logprobs(self, prompt: str, top: int) -> Sequence[Scored]:
        """The tokens of `prompt`, each scored given the ones before it (the first token's
        log-prob is ignored: it has no context). Called after `generate`, once per prompt of
        a completions request that asks for ``echo`` and ``logprobs``."""
        ...


# -- parsing -------------------------------------------------------------------------------------


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(
            400, "you must provide a model parameter (a non-empty string)", param="model"
        )
    return model


def _int(
    body: Mapping[str, Any], name: str, default: int | None, low: int, high: int
) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer, not {value!r}", param=name)
    if not low <= value <= high:
        raise ApiError(
            400, f"{name} must be between {low} and {high}, not {value}", param=name,
            code="invalid_value",
        )  # fmt: skip
    return value


def _float(body: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{name} must be a number, not {value!r}", param=name)
    if not low <= value <= high:
        raise ApiError(
            400, f"{name} must be between {low} and {high}, not {value}", param=name,
            code="invalid_value",
        )  # fmt: skip
    return float(value)


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, not {value!r}", param=name)
    return value


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise ApiError(400, "stop must be a string or a list of at most 4 strings", param="stop")


def _common(body: Mapping[str, Any]) -> tuple[int, float, tuple[str, ...], int | None]:
    if body.get("stream"):
        raise ApiError(
            400,
            "stream is not supported by this simulator; send stream=false (or leave it out)",
            param="stream",
            code="unsupported_parameter",
        )
    n = _int(body, "n", 1, 1, 128)
    temperature = _float(body, "temperature", 1.0, 0.0, 2.0)
    seed = _int(body, "seed", None, -(2**63), 2**63 - 1)
    assert n is not None
    return n, temperature, _stop(body), seed


def _content(message: Mapping[str, Any], index: int) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ApiError(
                    400,
                    f"messages[{index}].content: only text parts are supported by this simulator",
                    param=f"messages[{index}].content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(
                    400, f"messages[{index}].content: a text part needs a string 'text'",
                    param=f"messages[{index}].content",
                )  # fmt: skip
            parts.append(text)
        return "".join(parts)
    raise ApiError(
        400, f"messages[{index}].content must be a string or a list of text parts",
        param=f"messages[{index}].content",
    )  # fmt: skip


def parse_chat(body: Any) -> GenerationRequest:
    """A chat completions body as a `GenerationRequest` (400 naming the field when invalid)."""
    body = _object(body)
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of messages", param="messages")
    pairs: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{index}] must be an object", param=f"messages[{index}]")
        role = message.get("role")
        if role not in _ROLES:
            raise ApiError(
                400, f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))}, "
                f"not {role!r}", param=f"messages[{index}].role",
            )  # fmt: skip
        pairs.append((str(role), _content(message, index)))
    n, temperature, stop, seed = _common(body)
    max_tokens = _int(body, "max_completion_tokens", None, 1, 1_000_000)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", DEFAULT_CHAT_MAX_TOKENS, 1, 1_000_000)
    assert max_tokens is not None
    want = _bool(body, "logprobs")
    top = _int(body, "top_logprobs", None, 0, 20)
    if top is not None and not want:
        raise ApiError(400, "top_logprobs requires logprobs to be true", param="top_logprobs")
    prompt = next((content for role, content in reversed(pairs) if role == "user"), "")
    request = GenerationRequest(
        api="chat",
        model=model,
        prompt=prompt,
        max_tokens=max_tokens,
        n=n,
        temperature=temperature,
        stop=stop,
        logprobs=(top or 0) if want else None,
        seed=seed,
        messages=tuple(pairs),
    )
    return request


@dataclass(frozen=True, slots=True)
class ParsedCompletions:
    """A completions body: one request per prompt, and whether to echo the prompt."""

    requests: tuple[GenerationRequest, ...]
    echo: bool
    estimate_max_tokens: int


def parse_completions(body: Any) -> ParsedCompletions:
    body = _object(body)
    model = _model(body)
    prompt = body.get("prompt")
    prompts: list[str]
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        raise ApiError(
            400, "prompt as token ids is not supported by this simulator; send text",
            param="prompt", code="unsupported_parameter",
        )  # fmt: skip
    else:
        raise ApiError(
            400, "prompt must be a string or a non-empty list of strings", param="prompt"
        )
    n, temperature, stop, seed = _common(body)
    max_tokens = _int(body, "max_tokens", DEFAULT_COMPLETIONS_MAX_TOKENS, 0, 1_000_000)
    assert max_tokens is not None
    logprobs = _int(body, "logprobs", None, 0, 5)
    echo = _bool(body, "echo")
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise ApiError(400, "suffix must be a string", param="suffix")
    requests = tuple(
        GenerationRequest(
            api="completions",
            model=model,
            prompt=text,
            max_tokens=max_tokens,
            n=n,
            temperature=temperature,
            stop=stop,
            logprobs=logprobs,
            seed=seed,
            suffix=suffix or "",
        )
        for text in prompts
    )
    return ParsedCompletions(requests, echo, max_tokens)


# -- answers -------------------------------------------------------------------------------------

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-sim{next(_ids):012x}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_prompt_tokens(request: GenerationRequest, count: Callable[[str], int]) -> int:
    return sum(count(content) + _MESSAGE_OVERHEAD_TOKENS for _, content in request.messages) + (
        _MESSAGE_OVERHEAD_TOKENS
    )


def _chat_logprobs(generation: Generation) -> dict[str, Any]:
    content = []
    for scored in generation.tokens:
        content.append(
            {
                "token": scored.token,
                "logprob": scored.logprob,
                "bytes": list(scored.token.encode()),
                "top_logprobs": [
                    {"token": token, "logprob": value, "bytes": list(token.encode())}
                    for token, value in scored.top
                ],
            }
        )
    return {"content": content, "refusal": None}


def chat_response(
    model: str,
    generations: Sequence[Generation],
    prompt_tokens: int,
    completion_tokens: int,
    with_logprobs: bool,
) -> dict[str, Any]:
    return {
        "id": _id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": generation.text, "refusal": None},
                "logprobs": _chat_logprobs(generation) if with_logprobs else None,
                "finish_reason": generation.finish_reason,
            }
            for index, generation in enumerate(generations)
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_logprobs(
    prefix: Sequence[Scored], generation: Generation, top: int, start_offset: int = 0
) -> dict[str, Any]:
    """The legacy block for echoed prompt tokens (`prefix`, first without a log-prob) followed
    by the generated tokens; offsets count from the start of the prompt (`start_offset` is the
    prompt's length when it is not echoed)."""
    tokens: list[str] = []
    values: list[float | None] = []
    offsets: list[int] = []
    alternatives: list[dict[str, float] | None] = []
    offset = start_offset
    for index, scored in enumerate(itertools.chain(prefix, generation.tokens)):
        tokens.append(scored.token)
        offsets.append(offset)
        offset += len(scored.token)
        if index == 0 and prefix:
            values.append(None)
            alternatives.append(None)
        else:
            values.append(scored.logprob)
            alternatives.append(dict(scored.top[: max(top, 1)]) if top else {})
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "text_offset": offsets,
        "top_logprobs": alternatives,
    }


def completions_response(
    model: str,
    choices: Sequence[dict[str, Any]],
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    return {
        "id": _id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
        "choices": list(choices),
        "usage": usage(prompt_tokens, completion_tokens),
    }


def models_response(model: str, created: int, owned_by: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": created,
                "owned_by": owned_by,
            }
        ],
    }


def clamp_logprob(value: float) -> float:
    """A finite log-probability (JSON has no -inf)."""
    return max(-100.0, min(0.0, value)) if math.isfinite(value) else -100.0
