"""What an endpoint can do, probed once and cached: the checks log-probability scoring needs.

Prompt-token log-probabilities come from completions with ``echo`` + ``logprobs`` (vLLM, OpenAI's
legacy completion models). OpenAI chat models refuse ``echo``; llama.cpp's server rejects it or
returns only generated tokens (which would score every instruction at chance); Ollama returns no
log-probabilities. So the probe checks that the echoed tokens actually cover the prompt, and a
scoring mode the endpoint cannot serve fails before the first scoring call, never silently.

Two faults of llama-cpp-python's own server (``python -m llama_cpp.server``, 0.3.x) are caught
too: it reads ``max_tokens=0`` as "no limit" (the echo then generates a whole answer: the probe
switches to ``max_tokens=1``), and for models without a BOS token (Qwen2.5, SmolLM2) its echoed
log-probabilities are shifted by one token (each token gets the log-prob of the token after it).
The shift shows when the greedy next token, appended to the prompt and echoed, does not get the
log-prob it was generated with; such an endpoint is refused for log-probability scoring.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.errors import EndpointError, role_setting, setting_value
from engine.llm.errors import (
    ConnectionFailedError,
    EndpointTimeoutError,
    LLMError,
    QuotaExceededError,
)
from engine.llm.protocol.results import Completion

__all__ = [
    "Capabilities",
    "Capability",
    "CapabilityProbe",
    "Probed",
    "probe_capabilities",
    "require_capability",
]

_PROBE_PROMPT = "The capital of France is Paris. The capital of Italy is Rome."
_ALIGN_PROMPT = "The capital of France is Paris. The capital of Italy is"
_ALIGN_TOLERANCE = 0.1  # nats: batched and one-token evaluation may differ by rounding only


class Capability(enum.Enum):
    COMPLETIONS = "completions"
    CHAT = "chat"
    PROMPT_LOGPROBS = "prompt_logprobs"  # log-probs of given text via completions echo
    GENERATED_LOGPROBS = "generated_logprobs"  # completions logprobs of generated tokens
    CHAT_LOGPROBS = "chat_logprobs"  # chat logprobs of generated tokens
    SUFFIX = "suffix"  # completions suffix (fill in the middle)


def _alternative(capability: Capability, endpoint: str) -> str:
    """What to do instead, naming the setting as the user gives it."""
    exec_scoring = setting_value("scoring", "exec")
    api = role_setting(endpoint, "api")
    return {
        Capability.PROMPT_LOGPROBS: f"use execution-accuracy scoring ({exec_scoring}), or a "
        "server with exact prompt log-probabilities for this role (vLLM; a GGUF model: "
        "ape-engine local)",
        Capability.GENERATED_LOGPROBS: f"use execution-accuracy scoring ({exec_scoring})",
        Capability.CHAT_LOGPROBS: f"use the completions API ({setting_value(api, 'completions')}) "
        f"or execution-accuracy scoring ({exec_scoring})",
        Capability.SUFFIX: "use the forward proposal template instead of insert "
        f"({setting_value('proposal_template', 'forward')})",
        Capability.COMPLETIONS: f"use the chat API for this role ({setting_value(api, 'chat')})",
        Capability.CHAT: "use the completions API for this role "
        f"({setting_value(api, 'completions')})",
    }[capability]


@dataclass(frozen=True, slots=True)
class Capabilities:
    endpoint: str
    completions: bool
    chat: bool
    prompt_logprobs: bool
    generated_logprobs: bool
    chat_logprobs: bool
    suffix: bool
    echo_max_tokens: int = 0  # 0, or 1 for servers that refuse max_tokens=0 with echo
    notes: tuple[str, ...] = ()  # why a capability is missing, in the server's words

    def has(self, capability: Capability) -> bool:
        value: bool = getattr(self, capability.value)
        return value


class Probed(Protocol):
    """What a probe asks of an endpoint's client (`LLMClient` is one): its name and its calls."""

    name: str

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = ...,
        temperature: float = ...,
        stop: Sequence[str] | None = ...,
        n: int = ...,
        logprobs: int | None = ...,
        echo: bool = ...,
        suffix: str | None = ...,
        seed: int | None = ...,
        extra: Mapping[str, Any] | None = ...,
    ) -> Completion: ...

    async def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int = ...,
        temperature: float = ...,
        stop: Sequence[str] | None = ...,
        n: int = ...,
        logprobs: bool = ...,
        top_logprobs: int | None = ...,
        seed: int | None = ...,
        extra: Mapping[str, Any] | None = ...,
    ) -> Completion: ...


def _fatal(error: LLMError) -> bool:
    """Errors that say nothing about a capability: the endpoint is down or the account empty."""
    return isinstance(error, (QuotaExceededError, ConnectionFailedError, EndpointTimeoutError)) or (
        error.status is not None and (error.status >= 500 or error.status in (401, 429))
    )


def _echo_covers_prompt(result: Completion, prompt: str) -> str | None:
    """None when the echoed log-probs cover the prompt's tokens, else the reason they do not."""
    block = result.logprobs[0] if result.logprobs else None
    if block is None or not block.tokens:
        return "echo returned no token log-probabilities"
    if not block.text_offset:
        return "echo returned no text_offset"
    inside = [i for i, offset in enumerate(block.text_offset) if offset < len(prompt)]
    if len(inside) < 3:
        return "echo returned only generated tokens, not the prompt's"
    last = inside[-1]
    if block.text_offset[last] + len(block.tokens[last]) < len(prompt):
        return "echoed tokens stop before the end of the prompt"
    if any(block.logprobs[i] is None for i in inside[1:]):
        return "echoed prompt tokens have no log-probabilities"
    return None


def _generated_past(result: Completion, prompt: str) -> bool:
    """Whether the echo carries tokens after the prompt (generated ones)."""
    block = result.logprobs[0] if result.logprobs else None
    return block is not None and any(offset >= len(prompt) for offset in block.text_offset)


async def _echo_shift(client: Probed, echo_max_tokens: int) -> str | None:
    """None when an echoed token gets the log-prob it was generated with (or the check cannot
    tell), else the reason: the echo's log-probabilities are not those of their tokens."""
    generated = await client.complete(_ALIGN_PROMPT, max_tokens=1, temperature=0.0, logprobs=1)
    block = generated.logprobs[0] if generated.logprobs else None
    if block is None or not block.tokens or block.logprobs[0] is None:
        return None
    token, expected = block.tokens[0], block.logprobs[0]
    echoed = await client.complete(
        _ALIGN_PROMPT + token, max_tokens=echo_max_tokens, logprobs=1, echo=True, stop=["\n"]
    )
    block = echoed.logprobs[0] if echoed.logprobs else None
    if block is None:
        return None
    for index, offset in enumerate(block.text_offset):
        if offset == len(_ALIGN_PROMPT) and block.tokens[index] == token:
            value = block.logprobs[index]
            if value is not None and abs(value - expected) > _ALIGN_TOLERANCE:
                return (
                    f"echoed log-probabilities are not their tokens' ({token!r} was generated "
                    f"with {expected:.3f} but echoed with {value:.3f}: shifted by one token, as "
                    "llama-cpp-python's server does for models without a BOS token)"
                )
            return None
    return None  # the tokens did not line up: nothing to compare


class _Probe:
    """One run of the probe: the client asked, and notes on what it could not do and why."""

    __slots__ = ("client", "notes")

    def __init__(self, client: Probed) -> None:
        self.client = client
        self.notes: list[str] = []

    async def attempt(self, label: str, call: Any) -> Completion | None:
        """The answer to `call`, or None (noted under `label`) when the endpoint refused it."""
        try:
            result: Completion = await call
        except LLMError as error:
            self.refused(label, error)
            return None
        return result

    def refused(self, label: str, error: LLMError) -> None:
        """Note a refusal; re-raise an error that says nothing about a capability."""
        if _fatal(error):
            raise error
        self.notes.append(f"{label}: {error}")


async def _prompt_logprobs(probe: _Probe) -> int | None:
    """The max_tokens (0, else 1) with which echo gives the prompt's own log-probabilities, or
    None when neither does."""
    for max_tokens in (0, 1):
        # stop bounds a server that reads max_tokens=0 as "no limit" (OpenAI ignores it)
        echoed = await probe.attempt(
            f"echo (max_tokens={max_tokens})",
            probe.client.complete(
                _PROBE_PROMPT, max_tokens=max_tokens, logprobs=1, echo=True, stop=["\n", "."]
            ),
        )
        if echoed is None:
            continue
        reason = await _echo_fault(probe, echoed, max_tokens)
        if reason is None:
            return max_tokens
        probe.notes.append(f"echo (max_tokens={max_tokens}): {reason}")
    return None


async def _echo_fault(probe: _Probe, echoed: Completion, max_tokens: int) -> str | None:
    """None when the echo is usable for scoring, else why not."""
    reason = _echo_covers_prompt(echoed, _PROBE_PROMPT)
    if reason is None and max_tokens == 0 and _generated_past(echoed, _PROBE_PROMPT):
        reason = "the server generated tokens for max_tokens=0 (it reads 0 as no limit)"
    if reason is None:
        try:
            reason = await _echo_shift(probe.client, max_tokens)
        except LLMError as error:
            probe.refused("echo alignment check", error)
    return reason


async def _generated_logprobs(probe: _Probe) -> bool:
    generated = await probe.attempt(
        "logprobs", probe.client.complete(_PROBE_PROMPT, max_tokens=2, logprobs=1)
    )
    if generated is not None and generated.logprobs and generated.logprobs[0] is not None:
        block = generated.logprobs[0]
        return bool(block.tokens) and all(v is not None for v in block.logprobs)
    if generated is not None:
        probe.notes.append("logprobs: the answer carried no log-probabilities")
    return False


async def _suffix(probe: _Probe) -> bool:
    suffixed = await probe.attempt(
        "suffix", probe.client.complete("def add(a, b):\n    return", suffix="\n", max_tokens=1)
    )
    return suffixed is not None


async def _chat_logprobs(probe: _Probe) -> bool:
    answered = await probe.attempt(
        "chat logprobs",
        probe.client.chat([{"role": "user", "content": "Say OK."}], max_tokens=1, logprobs=True),
    )
    return bool(answered is not None and answered.logprobs and answered.logprobs[0] is not None)


async def probe_capabilities(client: Probed) -> Capabilities:
    """Ask the endpoint a handful of tiny questions (max_tokens <= 2) and record the answers."""
    probe = _Probe(client)
    completions = await probe.attempt("completions", client.complete(_PROBE_PROMPT, max_tokens=1))
    chat = await probe.attempt(
        "chat", client.chat([{"role": "user", "content": "Say OK."}], max_tokens=1)
    )
    echo_max_tokens: int | None = None
    generated_logprobs = False
    suffix = False
    if completions is not None:
        echo_max_tokens = await _prompt_logprobs(probe)
        generated_logprobs = await _generated_logprobs(probe)
        suffix = await _suffix(probe)
    chat_logprobs = chat is not None and await _chat_logprobs(probe)
    return Capabilities(
        endpoint=client.name,
        completions=completions is not None,
        chat=chat is not None,
        prompt_logprobs=echo_max_tokens is not None,
        generated_logprobs=generated_logprobs,
        chat_logprobs=chat_logprobs,
        suffix=suffix,
        echo_max_tokens=echo_max_tokens or 0,
        notes=tuple(probe.notes),
    )


class CapabilityProbe:
    """What one endpoint can do, probed on first use and kept: callers that ask while the probe
    runs wait for its answer instead of probing again."""

    __slots__ = ("_lock", "known")

    def __init__(self) -> None:
        self.known: Capabilities | None = None  # None: not probed yet
        self._lock: asyncio.Lock | None = None

    async def capabilities(self, client: Probed) -> Capabilities:
        """The endpoint's capabilities, probed through `client` the first time."""
        if self.known is not None:
            return self.known
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.known is None:
                self.known = await probe_capabilities(client)
        return self.known


def require_capability(capabilities: Capabilities, capability: Capability) -> None:
    """Raise an `EndpointError` naming the endpoint, what it lacks and the alternative."""
    if capabilities.has(capability):
        return
    relevant = [
        note for note in capabilities.notes if note.split(":", 1)[0] in _NOTE_KEYS[capability]
    ]
    detail = f" ({'; '.join(relevant)})" if relevant else ""
    raise EndpointError(
        f"endpoint {capabilities.endpoint!r} cannot provide {capability.value.replace('_', ' ')}"
        f"{detail} -- {_alternative(capability, capabilities.endpoint)}",
        endpoint=capabilities.endpoint,
        code=f"missing_{capability.value}",
    )


_NOTE_KEYS = {
    Capability.PROMPT_LOGPROBS: ("echo (max_tokens=0)", "echo (max_tokens=1)", "completions"),
    Capability.GENERATED_LOGPROBS: ("logprobs", "completions"),
    Capability.CHAT_LOGPROBS: ("chat logprobs", "chat"),
    Capability.SUFFIX: ("suffix", "completions"),
    Capability.COMPLETIONS: ("completions",),
    Capability.CHAT: ("chat",),
}
