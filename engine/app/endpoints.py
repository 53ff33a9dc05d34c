"""Where a study's calls go, decided once before anything else: the endpoint the settings name,
else the one the environment names as the official OpenAI client reads it (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``), else the simulator -- for a built-in task only. A task file with no
endpoint is refused: a study of your own examples against the simulator would score noise and
report it as a result.

Keys and header values come from the environment or a file and appear nowhere else: a key given
where a variable's name belongs is refused without being printed, and so is a header value that
looks like a key (``env:VAR`` or ``file:PATH`` keep it out of files and journals).

A role may run on several endpoints (`StudyConfig.endpoints`, `proposal_endpoints`;
docs/endpoints.md): `target_endpoints` and `proposal_endpoints` give each role's endpoints with
every field decided (what an endpoint's table leaves out is the study's setting).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from engine.errors import ConfigError
from engine.study.config import EndpointSettings, StudyConfig
from engine.task.builtin import BUILTIN_TASKS

__all__ = [
    "check_key_names",
    "header_items",
    "looks_like_key",
    "proposal_endpoints",
    "remote",
    "resolve_endpoints",
    "target_endpoints",
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"[A-Za-z0-9_\-.~+/=]+")
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"


def looks_like_key(value: str) -> bool:
    """Whether `value`, given as a variable's name, is more likely a key: not a name at all
    (``sk-...``), or long and mixed like a random token rather than ``MY_PROVIDER_KEY``."""
    if not _ENV_NAME.fullmatch(value):
        return True
    mixed = any(c.islower() for c in value) and any(c.isdigit() for c in value)
    return len(value) >= 20 and mixed


def _token_like(value: str) -> bool:
    """A header value that reads as a secret token (long, one word of letters and digits),
    not as a setting (``2024-10-21``, ``application/json; charset=utf-8``)."""
    word = value.removeprefix("Bearer ").strip()
    mixed = any(c.isalpha() for c in word) and any(c.isdigit() for c in word)
    return len(word) >= 20 and mixed and _TOKEN.fullmatch(word) is not None


def _no_endpoint(config: StudyConfig) -> ConfigError:
    return ConfigError(
        f"task {config.task!r} is not a built-in task and no endpoint is given. Point it at a "
        "model: "
        "--base-url URL --model NAME [--api-key-env VAR] (or set OPENAI_BASE_URL and "
        "OPENAI_API_KEY); or run a GGUF model on this machine: --backend local; or ask for the "
        "simulator explicitly: --backend sim (a simulator, not a model: its scores say nothing "
        "about your task)"
    )


def resolve_endpoints(
    config: StudyConfig, environ: Mapping[str, str] | None = None, *, builtin: bool = True
) -> StudyConfig:
    """`config` with its endpoint and key variable decided (see the module's docstring);
    `builtin` false: the task is not a built-in one whatever its name (examples in memory)."""
    environ = os.environ if environ is None else environ
    check_key_names(config)
    _check_lists(config)
    if config.protocol == "anthropic" and config.api != "chat":
        raise ConfigError("api: Anthropic's Messages API has no text completions; use api chat")
    changes: dict[str, object] = {}
    if not remote(config) and config.backend is None:
        from_env = environ.get("OPENAI_BASE_URL", "").strip()
        if config.protocol == "anthropic":
            changes["base_url"] = ANTHROPIC_BASE_URL
        elif from_env:
            changes["base_url"] = from_env
        elif builtin and config.task in BUILTIN_TASKS:
            changes["backend"] = "sim"
        else:
            raise _no_endpoint(config)
    outside = remote(config) or "base_url" in changes
    default_key = _KEY_ENV[config.protocol]
    if outside and not (config.api_key_env or config.api_key_file) and environ.get(default_key):
        changes["api_key_env"] = default_key
    if not changes:
        return config
    try:
        return config.replace(**changes)
    except ConfigError as error:  # OPENAI_BASE_URL that is not a URL
        raise ConfigError(f"environment variable OPENAI_BASE_URL: {error}") from None


def check_key_names(config: StudyConfig) -> None:
    """Refuse a key given where a variable's name belongs, without printing it."""
    names = [(field, getattr(config, field)) for field in ("api_key_env", "proposal_api_key_env")]
    for role in ("endpoints", "proposal_endpoints"):
        for index, entry in enumerate(getattr(config, role)):
            names.append((f"{role}[{index}].api_key_env", entry.api_key_env))
    for field, name in names:
        if name and looks_like_key(name):
            raise ConfigError(
                f"{field}: takes the name of an environment variable (like OPENAI_API_KEY), "
                "and the value given looks like a key itself (not printed here). Put the key in "
                f"a variable -- export MY_KEY=... -- and give {field} = MY_KEY, or give a file "
                f"with {field.replace('_env', '_file')}"
            )
    tables = [(field, getattr(config, field)) for field in ("headers", "proposal_headers")]
    for role in ("endpoints", "proposal_endpoints"):
        for index, entry in enumerate(getattr(config, role)):
            tables.append((f"{role}[{index}].headers", entry.headers))
    for field, headers in tables:
        for name, value in (headers or {}).items():
            if not value.startswith(("env:", "file:")) and _token_like(value):
                raise ConfigError(
                    f"{field}.{name}: the value looks like a key (not printed here); give "
                    f'"env:VAR" or "file:PATH" so that it stays out of files and journals'
                )


def header_items(headers: Mapping[str, str], field: str) -> tuple[tuple[str, str], ...]:
    """The headers with ``env:VAR`` and ``file:PATH`` values read (when the client opens)."""
    items = []
    for name, value in headers.items():
        where = f"{field}.{name}"
        if value.startswith("env:"):
            variable = value[4:]
            read = os.environ.get(variable, "").strip()
            if not read:
                raise ConfigError(f"{where}: environment variable {variable} is not set or empty")
            value = read
        elif value.startswith("file:"):
            path = Path(value[5:]).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ConfigError(
                    f"{where}: cannot read {str(path)!r} ({error.strerror})"
                ) from None
        items.append((name, value))
    return tuple(items)


def remote(config: StudyConfig) -> bool:
    """Whether the study's target is an endpoint (or several), not an in-process server."""
    return config.base_url is not None or bool(config.endpoints)


def _check_lists(config: StudyConfig) -> None:
    """A role's endpoints come from one place; each names its key once; names differ."""
    for single, listed in (("base_url", "endpoints"), ("proposal_base_url", "proposal_endpoints")):
        if getattr(config, single) is not None and getattr(config, listed):
            raise ConfigError(
                f"{listed}: give {single} (one endpoint) or {listed} (several), not both"
            )
        for index, entry in enumerate(getattr(config, listed)):
            if entry.api_key_env is not None and entry.api_key_file is not None:
                raise ConfigError(
                    f"{listed}[{index}].api_key_env: give the key's variable or its file "
                    "(api_key_file), not both"
                )
    named = [e.name for e in (*config.endpoints, *config.proposal_endpoints) if e.name]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ConfigError(f"endpoints: each endpoint needs a name of its own ({twice[0]!r} twice)")


def _decided(
    entries: list[EndpointSettings], role: str, defaults: EndpointSettings
) -> tuple[EndpointSettings, ...]:
    """`entries` with what each leaves out taken from `defaults`, and a name each: the role's
    name for one endpoint, else its own or the role and its place (``target-2``)."""
    decided = []
    for index, entry in enumerate(entries):
        own_key = entry.api_key_env is not None or entry.api_key_file is not None
        name = role if len(entries) == 1 else (entry.name or f"{role}-{index + 1}")
        decided.append(
            EndpointSettings(
                base_url=entry.base_url,
                name=name,
                model=entry.model or defaults.model,
                api_key_env=entry.api_key_env if own_key else defaults.api_key_env,
                api_key_file=entry.api_key_file if own_key else defaults.api_key_file,
                headers=entry.headers if entry.headers is not None else defaults.headers,
                rpm=entry.rpm if entry.rpm is not None else defaults.rpm,
                tpm=entry.tpm if entry.tpm is not None else defaults.tpm,
                timeout_s=entry.timeout_s or defaults.timeout_s,
                weight=entry.weight,
            )
        )
    return tuple(decided)


def target_endpoints(config: StudyConfig, base_url: str) -> tuple[EndpointSettings, ...]:
    """The target role's endpoints, every field decided; `base_url` is where the one endpoint
    is when the config names none (the in-process simulator or local model)."""
    entries = config.endpoints or [EndpointSettings(base_url=config.base_url or base_url)]
    defaults = EndpointSettings(
        base_url=base_url,
        model=config.model,
        api_key_env=config.api_key_env,
        api_key_file=None if config.api_key_env else config.api_key_file,
        headers=config.headers,
        rpm=config.rpm,
        tpm=config.tpm,
        timeout_s=config.timeout_s,
    )
    return _decided(list(entries), "target", defaults)


def proposal_endpoints(
    config: StudyConfig, targets: tuple[EndpointSettings, ...], model: str
) -> tuple[EndpointSettings, ...] | None:
    """The proposal role's endpoints, every field decided (its model is `model`; its key,
    headers and timeout the target's unless it has its own); None when proposals go to the
    target's endpoints as they are (the same clients)."""
    own_key = config.proposal_api_key_env or config.proposal_api_key_file
    same = (
        not config.proposal_endpoints
        and config.proposal_base_url is None
        and model == config.model
        and config.proposal_timeout_s in (None, config.timeout_s)
        and (own_key is None or own_key in (config.api_key_env, config.api_key_file))
        and config.proposal_headers in (None, config.headers)
    )
    if same:
        return None
    first = targets[0]
    defaults = EndpointSettings(
        base_url=first.base_url,
        model=model,
        api_key_env=config.proposal_api_key_env if own_key else first.api_key_env,
        api_key_file=config.proposal_api_key_file if own_key else first.api_key_file,
        headers=config.headers if config.proposal_headers is None else config.proposal_headers,
        rpm=config.rpm,
        tpm=config.tpm,
        timeout_s=config.proposal_timeout_s or config.timeout_s,
    )
    if config.proposal_endpoints:
        entries = list(config.proposal_endpoints)
    elif config.proposal_base_url is not None:
        entries = [EndpointSettings(base_url=config.proposal_base_url)]
    else:  # the target's servers, with the proposal model (or key, headers, timeout)
        entries = [
            EndpointSettings(
                base_url=target.base_url,
                api_key_env=None if own_key else target.api_key_env,
                api_key_file=None if own_key else target.api_key_file,
                headers=target.headers if config.proposal_headers is None else None,
                rpm=target.rpm,
                tpm=target.tpm,
                timeout_s=config.proposal_timeout_s or target.timeout_s,
                weight=target.weight,
            )
            for target in targets
        ]
    return _decided(entries, "proposal", defaults)
