"""The async client of one OpenAI-compatible endpoint: chat, completions, continuation log-prob.

`LLMClient` is a facade over one part per job: the `RequestBuilder` builds each call's request
in the endpoint's protocol (`engine.llm.protocol.builder`); the `CallPath` sends it -- limiter
-> transport -> classification inside the one retry layer (`engine.llm.calls.path`); the
scoring helpers read a continuation's log-prob out of an echo (`engine.llm.calls.scoring`); the
`CapabilityProbe` learns what the endpoint can do (`engine.llm.probing.capabilities`). The
client owns the session (the key, the transport) and the live settings. Answers are parsed into
small frozen results (`engine.llm.protocol.results`); nothing of the raw response outlives the
call, so an in-flight call costs a coroutine and a few hundred bytes.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any

from engine.llm.calls.path import CallPath
from engine.llm.calls.scoring import continuation_of, echo_max_tokens
from engine.llm.calls.stats import StatsSnapshot
from engine.llm.endpoint import EndpointConfig, load_api_key
from engine.llm.pacing.clock import Clock
from engine.llm.pacing.limiter import UNSET, RateLimiter, _Unset
from engine.llm.probing.capabilities import (
    Capabilities,
    Capability,
    CapabilityProbe,
    require_capability,
)
from engine.llm.protocol.anthropic import no_completions
from engine.llm.protocol.builder import RequestBuilder
from engine.llm.protocol.dialect import Adapting
from engine.llm.protocol.results import Completion, ContinuationLogprob
from engine.llm.transport.aiohttp import AiohttpTransport
from engine.llm.transport.interface import Transport
from engine.llm.transport.lean import LeanTransport

__all__ = ["LLMClient"]


class LLMClient:
    """One endpoint: its session, limiter, counters and probed capabilities.

    Use as ``async with LLMClient(config) as client:``; the API key is read on entry.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.limiter = limiter or RateLimiter(
            requests_per_minute=config.requests_per_minute,
            tokens_per_minute=config.tokens_per_minute,
            burst_s=config.burst_s,
            concurrency=config.concurrency,
            adaptive=config.adaptive,
            clock=clock,
        )
        self._transport = transport
        self._requests = RequestBuilder(config)
        # the parameters this endpoint takes, learned (the Messages API: one answer a request)
        adapting = Adapting(config.name, self._requests.dialect())
        self._calls = CallPath(config, self.limiter, adapting)
        self._calls.transport = transport
        self._probe = CapabilityProbe()

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        self._calls.secret = load_api_key(self.config)
        if self._transport is None:
            transport = LeanTransport if self.config.transport == "lean" else AiohttpTransport
            self._transport = transport(
                self.config.base_url,
                endpoint=self.name,
                headers=self.auth_headers(),
                connections=self.config.concurrency,
                connect_timeout_s=self.config.connect_timeout_s,
                timeout_s=self.config.timeout_s,
            )
        self._calls.transport = self._transport

    def auth_headers(self) -> dict[str, str]:
        """The headers every request carries, the key among them (for a request outside the
        transport, such as the preflight's GET /models); never shown anywhere."""
        return self._requests.headers(self.secret)

    @property
    def secret(self) -> str | None:  # for cutting the key out of messages, never for showing
        secret = self._calls.secret
        return secret.reveal() if secret is not None else None

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> LLMClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"LLMClient({self.config!r})"

    # -- live settings and read-outs -------------------------------------------------------------

    def reconfigure(
        self,
        *,
        requests_per_minute: float | _Unset | None = UNSET,
        tokens_per_minute: float | _Unset | None = UNSET,
        burst_s: float | _Unset = UNSET,
        concurrency: int | _Unset = UNSET,
        adaptive: bool | _Unset = UNSET,
    ) -> None:
        """Change limits or concurrency while calls run (the UI's knobs)."""
        self.limiter.reconfigure(
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            burst_s=burst_s,
            concurrency=concurrency,
            adaptive=adaptive,
        )
        if not isinstance(concurrency, _Unset) and self._transport is not None:
            self._transport.resize(concurrency)

    def resize(self, connections: int) -> None:
        """Keep up to `connections` connections open (a study's concurrency changed; the
        limiter's own cap, if it has one, is left as it is)."""
        if self._transport is not None:
            self._transport.resize(connections)

    def clear_quota_stop(self) -> None:
        """Send calls again after a quota or billing error (once credit was added): until then
        every call fails at once with that error instead of reaching the server."""
        self._calls.clear_quota_stop()

    @property
    def fail_over(self) -> bool:
        """True in a pool of several endpoints: a connection failure or a timeout ends the call
        at once instead of being retried here, and the pool sends it to another endpoint."""
        return self._calls.fail_over

    @fail_over.setter
    def fail_over(self, value: bool) -> None:
        self._calls.fail_over = value

    @property
    def adapting(self) -> Adapting:
        """The endpoint's dialect as learned so far, and the notes of what was learned."""
        return self._calls.adapting

    def stats(self) -> StatsSnapshot:
        return self._calls.stats.snapshot()

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def outstanding(self) -> int:
        """Calls started and not finished (queued in the limiter or in flight)."""
        return self._calls.stats.in_flight

    # -- calls --------------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        n: int = 1,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Coroutine[Any, Any, Completion]:
        """POST /chat/completions (await the result). `logprobs=True` returns the generated
        tokens' log-probs. A plain function returning the call's coroutine: one frame less
        per call in flight. On an Anthropic endpoint it is a Messages API call (no log-probs)."""
        request = self._requests.chat(
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
        return self._calls.call(request)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        n: int = 1,
        logprobs: int | None = None,
        echo: bool = False,
        suffix: str | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Coroutine[Any, Any, Completion]:
        """POST /completions (the legacy text API that vLLM, llama.cpp and others serve);
        await the result."""
        if not self._requests.completions:
            return no_completions(self.name)
        request = self._requests.completion(
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
        return self._calls.call(request)

    async def continuation_logprob(self, prompt: str, continuation: str) -> ContinuationLogprob:
        """log P(continuation | prompt), scored on prompt + continuation (appended verbatim:
        include the separating space) with completions ``echo`` + ``logprobs`` and the
        continuation's tokens picked by ``text_offset``. Fails with an `EndpointError` naming
        the endpoint when it cannot return prompt-token log-probabilities."""
        max_tokens = echo_max_tokens(self.name, continuation, self._probe.known)
        text = prompt + continuation
        result = await self.complete(
            text, max_tokens=max_tokens, temperature=0.0, logprobs=1, echo=True
        )
        return continuation_of(result, len(prompt), len(text), self.name)

    # -- capabilities -------------------------------------------------------------------------

    async def capabilities(self) -> Capabilities:
        """What this endpoint can do, probed on first use and cached."""
        return await self._probe.capabilities(self)

    async def require(self, capability: Capability) -> None:
        """Raise an `EndpointError` naming this endpoint and the alternative when it cannot
        serve `capability`; call before the first scoring call."""
        require_capability(await self.capabilities(), capability)
