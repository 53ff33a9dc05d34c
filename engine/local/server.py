"""The local model behind the OpenAI-compatible server of `engine.serving`: a `LocalBackend`
plugged into `OpenAIServer`, with the same routes, error shapes and rate-limit headers as the
simulator.

    async with serve_local(LocalSettings(model="smollm2")) as server:
        ...  # any OpenAI client at server.base_url, model "smollm2"

Loading the model takes about a second for SmolLM2 and runs in a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread

from engine.errors import ConfigError
from engine.local.backend import DEFAULT_QUEUE, LocalBackend, Order
from engine.local.model import LocalModel
from engine.local.models import resolve_model_path, served_model_name
from engine.serving.server import OpenAIServer, listening
from engine.serving.settings import ServerSettings

__all__ = ["DEFAULT_CONTEXT", "LocalServer", "LocalSettings", "load_model", "serve_local"]

DEFAULT_CONTEXT = 2048


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """What to serve and how: `model` is a GGUF path or a named model (``smollm2``); `name` is
    the model name clients send (default: the named model, or the file's stem)."""

    model: str = "smollm2"
    name: str | None = None
    threads: int | None = None
    context: int = DEFAULT_CONTEXT
    queue: int = DEFAULT_QUEUE
    order: Order = "prefix"  # which waiting call runs next (engine.local.backend)
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    api_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"local: threads must be >= 1, not {self.threads}")
        if self.context < 64:
            raise ConfigError(f"local: context must be >= 64 tokens, not {self.context}")
        if self.queue < 1:
            raise ConfigError(f"local: queue must be >= 1, not {self.queue}")

    def served_name(self) -> str:
        return self.name or served_model_name(self.model)


def load_model(settings: LocalSettings) -> LocalModel:
    path = resolve_model_path(settings.model)
    return LocalModel(
        path, threads=settings.threads, context=settings.context, name=settings.served_name()
    )


class LocalServer(OpenAIServer):
    """`OpenAIServer` answering with a local model; `local` holds its counters."""

    def __init__(self, settings: LocalSettings, backend: LocalBackend) -> None:
        serving = ServerSettings(
            model=backend.model.name,
            requests_per_minute=settings.requests_per_minute,
            tokens_per_minute=settings.tokens_per_minute,
            api_keys=settings.api_keys,
            owned_by=f"ape-engine local model (llama.cpp): {backend.model.path.name}",
        )
        super().__init__(serving, backend)
        self.local = backend


@contextlib.asynccontextmanager
async def serve_local(
    settings: LocalSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    model: LocalModel | None = None,
) -> AsyncIterator[LocalServer]:
    """Serve `settings.model` (or an already loaded `model`, left open) on `host`:`port`."""
    owned = model is None
    if model is None:
        model = await anyio.to_thread.run_sync(load_model, settings)
    try:
        server = LocalServer(
            settings, LocalBackend(model, queue=settings.queue, order=settings.order)
        )
        async with listening(server, host, port):
            yield server
    finally:
        if owned:
            model.close()
