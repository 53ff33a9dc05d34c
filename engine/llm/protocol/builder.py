"""The requests of one endpoint, in its protocol: the headers every request carries and the body
of each call.

An OpenAI-compatible endpoint takes /chat/completions and /completions bodies (request.py); an
Anthropic endpoint takes the Messages API's (anthropic.py), which has no text completions and
gives one answer per request, so its dialect starts with one choice per request. The builder
only builds: the call path sends, and the endpoint's learned `Dialect` rewrites a body on the
way (dialect.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.llm.endpoint import EndpointConfig
from engine.llm.protocol.anthropic import anthropic_headers, messages_request
from engine.llm.protocol.dialect import Dialect
from engine.llm.protocol.request import Request, chat_request, completion_request

__all__ = ["RequestBuilder"]


class RequestBuilder:
    """Headers and bodies for one endpoint's model and protocol."""

    __slots__ = ("_anthropic", "_extra_headers", "model")

    def __init__(self, config: EndpointConfig) -> None:
        self.model = config.model
        self._anthropic = config.protocol == "anthropic"
        self._extra_headers = config.headers_items()

    @property
    def completions(self) -> bool:
        """Whether the protocol has text completions (the Messages API has none)."""
        return not self._anthropic

    def dialect(self) -> Dialect:
        """The parameters the protocol is known to take before the endpoint says more."""
        return Dialect(choices=False) if self._anthropic else Dialect()

    def headers(self, key: str | None) -> dict[str, str]:
        """The headers every request carries, the key among them, then the configured extras."""
        if self._anthropic:
            headers = anthropic_headers(key)
        else:
            headers = {"Accept": "application/json"}
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
        headers.update(self._extra_headers)
        return headers

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] | None,
        n: int,
        logprobs: bool,
        top_logprobs: int | None,
        seed: int | None,
        extra: Mapping[str, Any] | None,
    ) -> Request:
        """A chat call: /chat/completions, or /messages on an Anthropic endpoint (which takes
        no log-probs and no seed)."""
        if self._anthropic:
            return messages_request(
                self.model,
                messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
                n=n,
                extra=extra,
            )
        return chat_request(
            self.model,
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            n=n,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            seed=seed,
            extra=extra,
        )

    def completion(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] | None,
        n: int,
        logprobs: int | None,
        echo: bool,
        suffix: str | None,
        seed: int | None,
        extra: Mapping[str, Any] | None,
    ) -> Request:
        """A /completions call (only where `completions` is true)."""
        return completion_request(
            self.model,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            n=n,
            logprobs=logprobs,
            echo=echo,
            suffix=suffix,
            seed=seed,
            extra=extra,
        )
