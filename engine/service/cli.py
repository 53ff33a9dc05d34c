"""`ape-engine serve`: run studies in a long-lived process behind the HTTP JSON API.

It binds 127.0.0.1 by default; binding any other address needs a bearer token, read from an
environment variable (``--token-env``, default ``APE_ENGINE_TOKEN``) or a file
(``--token-file``), never from the command line (it would show in ``ps``) and never logged. On
start it resumes the studies it was running when it last stopped; SIGTERM or SIGINT stops
taking new work, gives calls in flight ``--grace`` seconds, writes every journal's result
record and exits 0 (a second signal skips the grace).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
from aiohttp import web

from engine.errors import ConfigError
from engine.service.app import DEFAULT_MAX_BODY, build_app
from engine.service.manager import StudyManager
from engine.service.state import StateDir

__all__ = ["DEFAULT_PORT", "ServeOptions", "add_arguments", "load_token", "main", "serve"]

DEFAULT_PORT = 8750
DEFAULT_TOKEN_ENV = "APE_ENGINE_TOKEN"
MIN_TOKEN_LENGTH = 16
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    state_dir: str = ".ape"
    grace_s: float = 10.0
    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    resume: bool = True


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "API: GET /health, GET /openapi.json, POST|GET /v1/studies, GET|PATCH|DELETE "
        "/v1/studies/{id}, GET /v1/studies/{id}/events (server-sent events). See the README "
        "section 'Service and API'."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (127.0.0.1; any other needs a token)")
    add(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on ({DEFAULT_PORT}; 0 = a free port, printed at start)",
    )
    add(
        "--state-dir",
        default=".ape",
        metavar="DIR",
        help="journals, inline tasks, response cache and the service's study records (.ape); "
        "unfinished studies found here are resumed at start",
    )
    add(
        "--grace",
        type=float,
        default=10.0,
        metavar="S",
        help="on SIGTERM/SIGINT, seconds calls in flight get to finish before they are "
        "cancelled (10)",
    )
    add(
        "--token-env",
        metavar="VAR",
        help=f"environment variable holding the bearer token (default {DEFAULT_TOKEN_ENV}: "
        "when it is set, every route but /health needs the token)",
    )
    add(
        "--token-file", metavar="PATH", help="file holding the bearer token (instead of a variable)"
    )
    add(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help=f"largest request body accepted ({DEFAULT_MAX_BODY})",
    )
    add(
        "--no-resume",
        action="store_true",
        help="do not resume the unfinished studies of the state directory at start",
    )


def _options(args: argparse.Namespace) -> ServeOptions:
    token = load_token(args.token_env, args.token_file)
    if token is None and not is_loopback(args.host):
        raise ConfigError(
            f"--host {args.host}: binding beyond loopback needs a bearer token; set "
            f"{DEFAULT_TOKEN_ENV} (or --token-env VAR / --token-file PATH)"
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: must be from 0 to 65535 (got {args.port})")
    if not args.grace >= 0:
        raise ConfigError(f"--grace: must be >= 0 seconds (got {args.grace})")
    if args.max_body < 1024:
        raise ConfigError(f"--max-body: must be at least 1024 bytes (got {args.max_body})")
    return ServeOptions(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        grace_s=args.grace,
        token=token,
        max_body=args.max_body,
        resume=not args.no_resume,
    )


def _say(text: str) -> None:
    print(f"ape-engine serve: {text}", flush=True)


async def serve(options: ServeOptions) -> int:
    """Serve until SIGTERM or SIGINT, then drain and return 0."""
    state = StateDir(options.state_dir)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with StudyManager(state, say=_say) as manager:
            app = build_app(manager, token=options.token, max_body=options.max_body)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
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
                _say(
                    f"listening on http://{host}:{port} (state {state.root}, auth "
                    f"{'on' if options.token else 'off'})"
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


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    options = _options(args)
    return anyio.run(serve, options)
