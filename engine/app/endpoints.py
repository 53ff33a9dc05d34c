"""Where a study's calls go, decided once before anything else: the endpoint the settings name,
else the one the environment names as the official OpenAI client reads it (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``), else the simulator -- for a built-in task only. A task file with no
endpoint is refused: a study of your own examples against the simulator would score noise and
report it as a result.

Keys and header values come from the environment or a file and appear nowhere else: a key given
where a variable's name belongs is refused without being printed, and so is a header value that
looks like a key (``env:VAR`` or ``file:PATH`` keep it out of files and journals).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from engine.errors import ConfigError
from engine.study.config import StudyConfig
from engine.task.builtin import BUILTIN_TASKS

__all__ = ["check_key_names", "header_items", "looks_like_key", "resolve_endpoints"]

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
    if config.protocol == "anthropic" and config.api != "chat":
        raise ConfigError("api: Anthropic's Messages API has no text completions; use api chat")
    changes: dict[str, object] = {}
    if config.base_url is None and config.backend is None:
        from_env = environ.get("OPENAI_BASE_URL", "").strip()
        if config.protocol == "anthropic":
            changes["base_url"] = ANTHROPIC_BASE_URL
        elif from_env:
            changes["base_url"] = from_env
        elif builtin and config.task in BUILTIN_TASKS:
            changes["backend"] = "sim"
        else:
            raise _no_endpoint(config)
    remote = config.base_url is not None or "base_url" in changes
    default_key = _KEY_ENV[config.protocol]
    if remote and not (config.api_key_env or config.api_key_file) and environ.get(default_key):
        changes["api_key_env"] = default_key
    if not changes:
        return config
    try:
        return config.replace(**changes)
    except ConfigError as error:  # OPENAI_BASE_URL that is not a URL
        raise ConfigError(f"environment variable OPENAI_BASE_URL: {error}") from None


def check_key_names(config: StudyConfig) -> None:
    """Refuse a key given where a variable's name belongs, without printing it."""
    for field in ("api_key_env", "proposal_api_key_env"):
        name = getattr(config, field)
        if name and looks_like_key(name):
            raise ConfigError(
                f"{field}: takes the name of an environment variable (like OPENAI_API_KEY), "
                "and the value given looks like a key itself (not printed here). Put the key in "
                f"a variable -- export MY_KEY=... -- and give {field} = MY_KEY, or give a file "
                f"with {field.replace('_env', '_file')}"
            )
    for field in ("headers", "proposal_headers"):
        for name, value in (getattr(config, field) or {}).items():
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
