"""`ape-engine serve`: run studies in a long-lived process behind the HTTP JSON API.

The operator decides what studies may reach: the endpoints (``--endpoint NAME=URL,...`` or
``[endpoints.NAME]`` tables of ``--config serve.toml``: URL, models, the key's variable or file,
limits, timeout), the folders tasks, templates and local models are taken from by name, and the
concurrency cap. A request picks an endpoint by name and never names a URL, a variable or a file.

It binds 127.0.0.1 by default; binding any other address needs a bearer token, read from an
environment variable (``--token-env``, default ``APE_ENGINE_TOKEN``) or a file
(``--token-file``), never from the command line (it would show in ``ps``) and never logged. On
start it resumes the studies it was running when it last stopped; SIGTERM or SIGINT stops
taking new work, gives calls in flight ``--grace`` seconds, writes every journal's result
record and exits 0 (a second signal skips the grace). Settings: flags over the file over the
defaults. Reference: TOML v1.0.0 (the standard library's `tomllib`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
from msgspec import Meta

from engine.app.launcher import Launcher
from engine.decoding import Invalid, convert, load_toml, read_text
from engine.errors import ConfigError
from engine.service.app import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY
from engine.service.operator import (
    DEFAULT_MAX_ACTIVE_STUDIES,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_STUDY_MB,
    EndpointSpec,
    Operator,
    parse_endpoint_flag,
)
from engine.service.process import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_PORT,
    DEFAULT_TOKEN_ENV,
    ServeOptions,
    is_loopback,
    load_token,
    serve,
)

__all__ = ["add_arguments", "is_loopback", "load_token", "main"]


class ServeFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``--config serve.toml``: the flags' settings under their names, and the endpoints."""

    host: str | None = None
    port: Annotated[int, Meta(ge=0, le=65535)] | None = None
    state_dir: str | None = None
    grace: Annotated[float, Meta(ge=0, le=86_400)] | None = None
    token_env: str | None = None
    token_file: str | None = None
    max_body: Annotated[int, Meta(ge=1024, le=1 << 30)] | None = None
    header_timeout: Annotated[float, Meta(ge=1, le=3600)] | None = None
    body_timeout: Annotated[float, Meta(ge=1, le=3600)] | None = None
    resume: bool = True
    allow_hosts: list[str] = []
    max_concurrency: int | None = None
    max_study_mb: float | None = None
    max_study_calls: int | None = None
    max_active_studies: int | None = None
    cache_max_mb: float | None = None
    task_dir: str | None = None
    templates_dir: str | None = None
    model_dir: str | None = None
    endpoints: dict[str, EndpointSpec] = {}


def _add_timeouts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--header-timeout",
        type=float,
        metavar="S",
        help="seconds a connection may take to send a request's head, or stay idle between "
        f"requests, before it is closed ({DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        help=f"seconds a request may take to send its body (408 after; {DEFAULT_BODY_TIMEOUT_S:g})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "API: GET /health, GET /openapi.json, POST|GET /v1/studies, GET|PATCH|DELETE "
        "/v1/studies/{id}, POST /v1/studies/{id}/resume (a quarantined study), GET "
        "/v1/studies/{id}/events (server-sent events). See "
        "docs/service.md; what a request can and cannot do: docs/security.md."
    )
    add = parser.add_argument
    add("--config", metavar="FILE.toml", help="settings file (these flags' names, [endpoints.X])")
    add("--host", help="address to bind (127.0.0.1; any other needs a token)")
    add("--port", type=int, help=f"port to listen on ({DEFAULT_PORT}; 0 = a free one, printed)")
    add(
        "--state-dir",
        metavar="DIR",
        help="journals, inline tasks, response cache and the service's study records (.ape); "
        "unfinished studies found here are resumed at start",
    )
    add("--grace", type=float, metavar="S", help="seconds calls in flight get on SIGTERM (10)")
    add(
        "--token-env",
        metavar="VAR",
        help=f"environment variable holding the bearer token (default {DEFAULT_TOKEN_ENV}: "
        "when it is set, every route but /health needs the token)",
    )
    add("--token-file", metavar="PATH", help="file holding the bearer token")
    add("--max-body", type=int, metavar="BYTES", help=f"largest body ({DEFAULT_MAX_BODY})")
    _add_timeouts(parser)
    add("--no-resume", action="store_true", help="do not resume unfinished studies at start")
    _add_operator_flags(parser.add_argument_group("what studies may use (the operator's)"))


def _add_operator_flags(operator: argparse._ArgumentGroup) -> None:
    operator.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="NAME=URL[,KEY=VALUE...]",
        help="an endpoint studies may pick by name (repeat for more); KEY: models (a;b), "
        "api_key_env, api_key_file, rpm, tpm, timeout_s, transport",
    )
    operator.add_argument(
        "--max-concurrency",
        type=int,
        metavar="N",
        help=f"most calls in flight per study ({DEFAULT_MAX_CONCURRENCY})",
    )
    operator.add_argument(
        "--max-study-mb",
        type=float,
        metavar="MB",
        help="a study whose worst-case memory is over this is refused "
        f"({DEFAULT_MAX_STUDY_MB:.0f})",
    )
    operator.add_argument(
        "--max-study-calls",
        type=int,
        metavar="N",
        help="a study whose worst case (full evaluation) makes more calls is refused (no limit)",
    )
    operator.add_argument(
        "--max-active-studies",
        type=int,
        metavar="N",
        help=f"studies running at once; more are refused (429) ({DEFAULT_MAX_ACTIVE_STUDIES})",
    )
    operator.add_argument("--cache-max-mb", type=float, metavar="MB", help="response cache (2048)")
    operator.add_argument("--task-dir", metavar="DIR", help="task files studies may name")
    operator.add_argument("--templates-dir", metavar="DIR", help="template files they may name")
    operator.add_argument("--model-dir", metavar="DIR", help="GGUF models they may name (local)")
    operator.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name clients reach the service by (beside its address; repeat for more)",
    )


def _file(path: str | None) -> ServeFile:
    if path is None:
        return ServeFile()
    where = f"config file {path!r}"
    data = load_toml(read_text(path, where), where)
    try:
        settings: ServeFile = convert(data, ServeFile)
    except Invalid as error:
        raise ConfigError(f"{where}: {error}") from None
    return settings


def _folder(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"{flag}: {str(folder)!r} is not a folder")
    return str(folder)


def _check_keys(endpoints: dict[str, EndpointSpec]) -> None:
    """Each endpoint's key is there at start, not at a study's first call."""
    for name, spec in endpoints.items():
        if spec.api_key_env is not None and not os.environ.get(spec.api_key_env, "").strip():
            raise ConfigError(
                f"endpoint {name!r}: environment variable {spec.api_key_env} is not set or empty"
            )
        if spec.api_key_file is not None and not os.access(spec.api_key_file, os.R_OK):
            raise ConfigError(f"endpoint {name!r}: cannot read api_key_file {spec.api_key_file!r}")


def _operator(args: argparse.Namespace, file: ServeFile) -> Operator:
    endpoints: dict[str, Any] = {
        name: msgspec.to_builtins(spec) for name, spec in file.endpoints.items()
    }
    for text in args.endpoint:
        name, fields = parse_endpoint_flag(text)
        endpoints[name] = fields
    settings: dict[str, Any] = {"endpoints": endpoints}
    for name in (
        "max_concurrency",
        "max_study_mb",
        "max_study_calls",
        "max_active_studies",
        "cache_max_mb",
    ):
        value = getattr(args, name)
        value = value if value is not None else getattr(file, name)
        if value is not None:
            settings[name] = value
    for name in ("task_dir", "templates_dir", "model_dir"):
        flag = "--" + name.replace("_", "-")
        settings[name] = _folder(getattr(args, name) or getattr(file, name), flag)
    operator = Operator.decode(settings, "--endpoint/--config")
    _check_keys(operator.endpoints)
    return operator


def _options(args: argparse.Namespace) -> ServeOptions:
    file = _file(args.config)

    def pick(name: str, default: Any) -> Any:
        flag = getattr(args, name)
        if flag is not None:
            return flag
        value = getattr(file, name)
        return default if value is None else value

    host = pick("host", "127.0.0.1")
    token = load_token(pick("token_env", None), pick("token_file", None))
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: binding beyond loopback needs a bearer token; set "
            f"{DEFAULT_TOKEN_ENV} (or --token-env VAR / --token-file PATH)"
        )
    port, grace, max_body = pick("port", DEFAULT_PORT), pick("grace", 10.0), pick("max_body", None)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: must be from 0 to 65535 (got {port})")
    if not 0 <= grace <= 86_400:
        raise ConfigError(f"--grace: must be from 0 to 86400 seconds (got {grace})")
    max_body = DEFAULT_MAX_BODY if max_body is None else max_body
    if not 1024 <= max_body <= 1 << 30:
        raise ConfigError(f"--max-body: must be from 1024 bytes to 1 GiB (got {max_body})")
    header_s = pick("header_timeout", DEFAULT_HEADER_TIMEOUT_S)
    body_s = pick("body_timeout", DEFAULT_BODY_TIMEOUT_S)
    for flag, seconds in (("--header-timeout", header_s), ("--body-timeout", body_s)):
        if not 1 <= seconds <= 3600:
            raise ConfigError(f"{flag}: must be from 1 to 3600 seconds (got {seconds:g})")
    return ServeOptions(
        host=host,
        port=port,
        state_dir=pick("state_dir", ".ape"),
        grace_s=grace,
        token=token,
        max_body=max_body,
        header_timeout_s=header_s,
        body_timeout_s=body_s,
        resume=file.resume and not args.no_resume,
        allowed_hosts=tuple([*file.allow_hosts, *args.allow_host]),
        operator=_operator(args, file),
    )


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    options = _options(args)
    return anyio.run(serve, options, Launcher())
