"""The service as a process: bind, resume unfinished studies, serve until SIGTERM or SIGINT,
then drain (calls in flight get a grace period, every journal gets its result record).

It binds 127.0.0.1 by default; binding any other address needs a bearer token, read from an
environment variable or a file (`load_token`), never from the command line and never logged.
The operator's endpoints, folders and caps (`engine.service.operator.Operator`) and the host
names it answers to (`engine.service.browser.HostPolicy`) come with the options.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from aiohttp import web

from engine.errors import ConfigError
from engine.service.app import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY, build_app
from engine.service.browser import HostPolicy, is_loopback
from engine.service.manager import Launcher, StudyManager
from engine.service.operator import Operator
from engine.service.state import StateDir

__all__ = [
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN_ENV",
    "MIN_TOKEN_LENGTH",
    "ServeOptions",
    "is_loopback",
    "load_token",
    "serve",
]

DEFAULT_PORT = 8750
#: a connection that has not sent a whole request head within this many seconds (since it
#: opened, or since its last answer) is closed: slow or idle connections cannot pile up
DEFAULT_HEADER_TIMEOUT_S = 15.0
DEFAULT_TOKEN_ENV = "APE_ENGINE_TOKEN"
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    state_dir: str = ".ape"
    grace_s: float = 10.0
    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    resume: bool = True
    allowed_hosts: tuple[str, ...] = ()  # names Host may give beside the bound address
    operator: Operator = field(default_factory=Operator)


def load_token(token_env: str | None, token_file: str | None) -> str | None:
    """The bearer token from a file or an environment variable (None when neither is set);
    errors name where it was looked for, never the token."""
    if token_file is not None:
        path = Path(token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise ConfigError(f"--token-file: cannot read {str(path)!r} ({reason})") from None
        where = f"--token-file {str(path)!r}"
    else:
        name = token_env or DEFAULT_TOKEN_ENV
        token = os.environ.get(name, "").strip()
        if not token:
            if token_env is not None:
                raise ConfigError(f"--token-env: environment variable {name} is not set or empty")
            return None
        where = f"environment variable {name}"
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise ConfigError(
            f"{where}: the token must be at least {MIN_TOKEN_LENGTH} characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _say(text: str) -> None:
    print(f"ape-engine serve: {text}", flush=True)


async def serve(options: ServeOptions, launcher: Launcher) -> int:
    """Serve until SIGTERM or SIGINT, then drain and return 0; studies are prepared and
    opened by `launcher` (the composition's)."""
    state = StateDir(options.state_dir)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with StudyManager(state, launcher, say=_say, operator=options.operator) as manager:
            app = build_app(
                manager,
                token=options.token,
                max_body=options.max_body,
                body_timeout_s=options.body_timeout_s,
                hosts=HostPolicy.of(options.host, options.allowed_hosts),
            )
            runner = web.AppRunner(
                app,
                access_log=None,
                shutdown_timeout=2.0,
                # aiohttp's idle timer runs from a connection's start until a whole request
                # head has come: it is the header read timeout as well
                keepalive_timeout=options.header_timeout_s,
            )
            await runner.setup()
            try:
                site = web.TCPSite(runner, options.host, options.port)
                try:
                    await site.start()
                except OSError as error:
                    raise ConfigError(
                        f"--host/--port: cannot listen on {options.host}:{options.port} "
                        f"({error.strerror or error})"
                    ) from None
                if options.resume:  # before saying where: a client then sees them all
                    await manager.resume_unfinished()
                port = runner.addresses[0][1]
                host = f"[{options.host}]" if ":" in options.host else options.host
                endpoints = ", ".join(options.operator.endpoints) or "none: the simulator only"
                _say(
                    f"listening on http://{host}:{port} (state {state.root}, auth "
                    f"{'on' if options.token else 'off'}, endpoints {endpoints})"
                )
                async for signum in signals:
                    _say(f"{signal.Signals(signum).name}: taking no new work")
                    break
                async with anyio.create_task_group() as group:

                    async def second_signal() -> None:
                        async for _ in signals:
                            _say("second signal: cancelling the calls in flight now")
                            manager.force()

                    group.start_soon(second_signal)
                    await manager.drain(options.grace_s)
                    group.cancel_scope.cancel()
            finally:
                await runner.cleanup()
    _say("stopped; journals flushed")
    return 0
