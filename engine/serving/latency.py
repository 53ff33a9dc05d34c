"""Latency: how long a server waits before it answers, as a remote model would take.

In seconds, ``(latency_base_s + latency_per_prompt_token_s * prompt + latency_per_token_s *
tokens) * lognormal(0, latency_jitter)`` for a call with `prompt` prompt tokens and an answer of
`tokens` completion tokens, the jitter seeded by `ServerSettings.seed`.

With `prefix_cache_tokens` > 0 the server keeps a prefix cache, as vLLM's and SGLang's automatic
prefix caching and llama.cpp's slots do: the prompts it saw last, least recently used evicted
first, up to that many tokens in all. A prompt token inside the longest prefix the new prompt
shares with a cached prompt costs `cached_token_cost` of an uncached one. The cache is looked up
and filled when a call arrives (a real server fills it when the prefill ends): it models which
order of calls a prefix cache rewards, not the timing inside one batch.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Sequence

from engine.serving.settings import ServerSettings

__all__ = ["Latency", "PrefixCache"]


class PrefixCache:
    """Recent prompts (as token sequences) with the longest-shared-prefix lookup."""

    def __init__(self, capacity_tokens: int) -> None:
        self.capacity = capacity_tokens
        self._prompts: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._tokens = 0
        self.hits = 0  # prompt tokens served from the cache
        self.misses = 0

    def take(self, tokens: Sequence[str]) -> int:
        """How many leading tokens of `tokens` the cache holds; then `tokens` is cached."""
        prompt = tuple(tokens)
        best, best_key = 0, None
        for cached in self._prompts:
            shared = 0
            for a, b in zip(cached, prompt, strict=False):
                if a != b:
                    break
                shared += 1
            if shared > best:
                best, best_key = shared, cached
        if best_key is not None:
            self._prompts.move_to_end(best_key)
        self.hits += best
        self.misses += len(prompt) - best
        self._insert(prompt)
        return best

    def _insert(self, prompt: tuple[str, ...]) -> None:
        if prompt in self._prompts:
            self._prompts.move_to_end(prompt)
            return
        self._prompts[prompt] = None
        self._tokens += len(prompt)
        while self._tokens > self.capacity and len(self._prompts) > 1:
            evicted, _ = self._prompts.popitem(last=False)
            self._tokens -= len(evicted)


class Latency:
    """The waits of one server."""

    def __init__(self, settings: ServerSettings) -> None:
        self._base_s = settings.latency_base_s
        self._per_token_s = settings.latency_per_token_s
        self._per_prompt_token_s = settings.latency_per_prompt_token_s
        self._cached_cost = settings.cached_token_cost
        self._jitter = settings.latency_jitter
        self._draws = random.Random(f"latency:{settings.seed}")
        self.prefix_cache = (
            PrefixCache(settings.prefix_cache_tokens) if settings.prefix_cache_tokens else None
        )

    def prompt_cost(self, prompt: Sequence[str]) -> float:
        """Prompt tokens as uncached-token equivalents, through the prefix cache if any."""
        cached = self.prefix_cache.take(prompt) if self.prefix_cache is not None else 0
        return (len(prompt) - cached) + cached * self._cached_cost

    async def wait(self, tokens: int, prompt: float = 0.0) -> None:
        """Wait for an answer of `tokens` tokens to a prompt of `prompt` uncached-token
        equivalents (`prompt_cost`)."""
        delay = self._base_s + self._per_prompt_token_s * prompt + self._per_token_s * tokens
        if delay <= 0:
            return
        if self._jitter > 0:
            delay *= self._draws.lognormvariate(0.0, self._jitter)
        await asyncio.sleep(delay)
