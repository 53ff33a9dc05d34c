"""One completion call, chat or legacy completions: its body read, its tokens counted, the
backend asked, and the answer shaped (`engine.serving.protocol` holds the shapes).

A chat call is one `GenerationRequest`; a completions call is one per prompt, each echoing its
prompt when asked. The server counts tokens with the backend's own tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from engine.nesting import json_depth_problem
from engine.serving.messages import messages_response, parse_messages
from engine.serving.protocol import (
    ApiError,
    Backend,
    GenerationRequest,
    Scored,
    chat_prompt_tokens,
    chat_response,
    completion_logprobs,
    completions_response,
    parse_chat,
    parse_completions,
)

__all__ = ["Api", "Call", "answer", "read_call"]

#: The two completion routes of the OpenAI API, and Anthropic's Messages API.
Api = Literal["chat", "completions", "messages"]

# the most answer tokens the tokens-per-minute limit takes up front per chat choice: chat's
# max_tokens defaults to 4096, and taking that for every call would empty the bucket for
# answers that are short (what was not used is given back once the call is answered)
_CHAT_ESTIMATE_CAP = 256


@dataclass(frozen=True, slots=True)
class Call:
    """What a chat (one request) or completions (one request per prompt) body asks for."""

    api: Api
    requests: tuple[GenerationRequest, ...]
    echo: bool = False

    @property
    def model(self) -> str:
        return self.requests[0].model

    def prompt_tokens(self, count: Callable[[str], int]) -> int:
        if self.api != "completions":
            return chat_prompt_tokens(self.requests[0], count)
        return sum(count(request.prompt) for request in self.requests)

    def prompt_texts(self) -> list[str]:
        """The text of each prompt (a chat conversation as one text, role by role)."""
        if self.api == "chat":
            return ["\n".join(f"{role}: {text}" for role, text in self.requests[0].messages)]
        return [request.prompt for request in self.requests]

    def estimate(self, prompt_tokens: int) -> int:
        """The tokens the call may use, as the tokens-per-minute limit takes them up front."""
        if self.api != "completions":
            chat = self.requests[0]
            return prompt_tokens + chat.n * min(chat.max_tokens, _CHAT_ESTIMATE_CAP)
        return prompt_tokens + sum(r.n * r.max_tokens for r in self.requests)


def read_call(api: Api, raw: bytes, adjust: Callable[[Api, Any], Any] | None = None) -> Call:
    """The call a request body holds (400 naming the field when it is invalid); `adjust`
    answers or rewrites the decoded body first (a real server's quirks)."""
    deep = json_depth_problem(raw)
    if deep is not None:
        raise ApiError(400, f"The JSON body of your request is {deep}.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. The body must be a JSON "
            "object with the fields of the OpenAI API.",
        ) from None
    if adjust is not None:
        body = adjust(api, body)
    if api == "chat":
        return Call("chat", (parse_chat(body),))
    if api == "messages":
        return Call("messages", (parse_messages(body),))
    parsed = parse_completions(body)
    return Call("completions", parsed.requests, parsed.echo)


async def answer(
    backend: Backend, call: Call, prompt_tokens: int, count: Callable[[str], int]
) -> tuple[dict[str, Any], int]:
    """The answer's body and its completion tokens."""
    if call.api == "chat":
        return await _chat_answer(backend, call.requests[0], prompt_tokens, count)
    if call.api == "messages":
        (generation,) = await backend.generate(call.requests[0])
        completion_tokens = count(generation.text)
        payload = messages_response(call.model, generation, prompt_tokens, completion_tokens)
        return payload, completion_tokens
    return await _completions_answer(backend, call, prompt_tokens, count)


async def _chat_answer(
    backend: Backend, chat: GenerationRequest, prompt_tokens: int, count: Callable[[str], int]
) -> tuple[dict[str, Any], int]:
    generations = await backend.generate(chat)
    completion_tokens = sum(count(g.text) for g in generations)
    payload = chat_response(
        chat.model, generations, prompt_tokens, completion_tokens, chat.logprobs is not None
    )
    return payload, completion_tokens


async def _completions_answer(
    backend: Backend, call: Call, prompt_tokens: int, count: Callable[[str], int]
) -> tuple[dict[str, Any], int]:
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    for request in call.requests:
        generations = await backend.generate(request)
        prefix: Sequence[Scored] = ()
        if call.echo and request.logprobs is not None:
            prefix = await backend.prompt_logprobs(request.prompt, request.logprobs)
        for generation in generations:
            completion_tokens += count(generation.text)
            logprobs = None
            if request.logprobs is not None:
                logprobs = completion_logprobs(
                    prefix,
                    generation,
                    request.logprobs,
                    start_offset=0 if call.echo else len(request.prompt),
                )
            choices.append(
                {
                    "text": (request.prompt if call.echo else "") + generation.text,
                    "index": len(choices),
                    "logprobs": logprobs,
                    "finish_reason": generation.finish_reason,
                }
            )
    payload = completions_response(call.model, choices, prompt_tokens, completion_tokens)
    return payload, completion_tokens
