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
import logging
import sys

import anyio

from engine.app.launcher import Launcher
from engine.errors import ConfigError
from engine.service.app import DEFAULT_MAX_BODY
from engine.service.process import (
    DEFAULT_PORT,
    DEFAULT_TOKEN_ENV,
    ServeOptions,
    is_loopback,
    load_token,
    serve,
)

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "API: GET /health, GET /openapi.json, POST|GET /v1/studies, GET|PATCH|DELETE "
        "/v1/studies/{id}, GET /v1/studies/{id}/events (server-sent events). See docs/service.md."
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


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    options = _options(args)
    return anyio.run(serve, options, Launcher())
