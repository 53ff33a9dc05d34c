"""Where a study's calls go, decided once before anything else: the endpoint the settings name,
else the one the environment names as the official OpenAI client reads it (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``), else the simulator -- for a built-in task only. A task file with no
endpoint is refused: a study of your own examples against the simulator would score noise and
report it as a result.

Keys and header values come from the environment or a file and appear nowhere else: a key given
where a variable's name belongs is refused without being printed, and so is a header value that
looks like a key (``env:VAR`` or ``file:PATH`` keep it out of files and journals).

A role (`engine.settings.Role`: target, proposal, judge) may run on several endpoints
(docs/endpoints.md): `role_endpoints` gives a role's endpoints with every field decided (what an
endpoint leaves out is its role's, what the proposal or judge role leaves out the target's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from engine.errors import ConfigError, setting, setting_value, setting_values
from engine.settings import BackendSettings, Endpoint, Role
from engine.task.builtin import BUILTIN_TASKS

__all__ = [
    "Roles",
    "check_key_names",
    "effective",
    "header_items",
    "looks_like_key",
    "remote",
    "resolve_endpoints",
    "role_endpoints",
]

#: The study's roles by name: target, proposal, judge.
Roles = dict[str, Role]

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


def _no_endpoint(task: str) -> ConfigError:
    model = setting_values(("base_url", "URL"), ("model", "NAME"), ("api_key_env", "VAR"))
    return ConfigError(
        f"task {task!r} is not a built-in task and no endpoint is given. Point it at a model: "
        f"{model} (or set OPENAI_BASE_URL and OPENAI_API_KEY); or run a GGUF model on this "
        f"machine: {setting_value('backend', 'local')}; or ask for the simulator explicitly: "
        f"{setting_value('backend', 'sim')} (a simulator, not a model: its scores say nothing "
        "about your task)"
    )


def effective(role: Role, target: Role) -> Role:
    """`role` with what it leaves out taken from the target (the target itself as it is)."""
    if role is target:
        return role
    taken = {
        name: getattr(target, name)
        for name in ("model", "protocol", "api", "timeout_s", "rpm", "tpm")
        if getattr(role, name) is None
    }
    return msgspec.structs.replace(role, **taken) if taken else role


def resolve_endpoints(
    roles: Roles,
    backend: BackendSettings,
    task: str,
    environ: Mapping[str, str] | None = None,
    *,
    builtin: bool = True,
) -> tuple[Role, BackendSettings]:
    """The target role and the backend with the endpoint and key variable decided (see the
    module's docstring); `builtin` false: the task is not a built-in one whatever its name
    (examples in memory)."""
    environ = os.environ if environ is None else environ
    check_key_names(roles)
    _check_lists(roles)
    target = roles["target"]
    if target.protocol == "anthropic" and target.api != "chat":
        raise ConfigError("api: Anthropic's Messages API has no text completions; use api chat")
    changes: dict[str, object] = {}
    if not remote(target) and backend.kind is None:
        from_env = environ.get("OPENAI_BASE_URL", "").strip()
        if target.protocol == "anthropic":
            changes["base_url"] = ANTHROPIC_BASE_URL
        elif from_env:
            if not from_env.startswith(("http://", "https://")):
                raise ConfigError(
                    "environment variable OPENAI_BASE_URL: base_url: Expected `str` matching "
                    f"regex '^https?://', got {from_env!r}"
                )
            changes["base_url"] = from_env
        elif builtin and task in BUILTIN_TASKS:
            backend = msgspec.structs.replace(backend, kind="sim")
        else:
            raise _no_endpoint(task)
    outside = remote(target) or "base_url" in changes
    default_key = _KEY_ENV[target.protocol or "openai"]
    if outside and not (target.api_key_env or target.api_key_file) and environ.get(default_key):
        changes["api_key_env"] = default_key
    if changes:
        target = msgspec.structs.replace(target, **changes)
    return target, backend


def _flat(role: str, field: str) -> str:
    return field if role == "target" else f"{role}_{field}"


def check_key_names(roles: Roles) -> None:
    """Refuse a key given where a variable's name belongs, without printing it."""
    names: list[tuple[str, str | None]] = []
    tables: list[tuple[str, Mapping[str, str] | None]] = []
    for role_name, role in roles.items():
        names.append((_flat(role_name, "api_key_env"), role.api_key_env))
        tables.append((_flat(role_name, "headers"), role.headers))
        listed = _flat(role_name, "endpoints")
        for index, entry in enumerate(role.endpoints):
            names.append((f"{listed}[{index}].api_key_env", entry.api_key_env))
            tables.append((f"{listed}[{index}].headers", entry.headers))
    for field, name in names:
        if name and looks_like_key(name):
            named = setting(field)
            raise ConfigError(
                f"{named}: takes the name of an environment variable (like OPENAI_API_KEY), "
                "and the value given looks like a key itself (not printed here). Put the key in "
                f"a variable -- export MY_KEY=... -- and give {setting_value(field, 'MY_KEY')}, "
                f"or give a file with {setting(field.replace('_env', '_file'))}"
            )
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


def remote(target: Role) -> bool:
    """Whether the study's target is an endpoint (or several), not an in-process server."""
    return target.base_url is not None or bool(target.endpoints)


def _check_lists(roles: Roles) -> None:
    """A role's endpoints come from one place; each names its key once; names differ."""
    named: list[str] = []
    for role_name, role in roles.items():
        single, listed = _flat(role_name, "base_url"), _flat(role_name, "endpoints")
        if role.api_key_env is not None and role.api_key_file is not None:
            key = setting(_flat(role_name, "api_key_env"))
            raise ConfigError(
                f"{key}: give the key's variable or its file "
                f"({setting(_flat(role_name, 'api_key_file'))}), not both"
            )
        if role.base_url is not None and role.endpoints:
            raise ConfigError(
                f"{listed}: give {setting(single)} (one endpoint) or {listed} (several), not both"
            )
        for index, entry in enumerate(role.endpoints):
            if entry.api_key_env is not None and entry.api_key_file is not None:
                raise ConfigError(
                    f"{listed}[{index}].api_key_env: give the key's variable or its file "
                    "(api_key_file), not both"
                )
            if entry.name:
                named.append(entry.name)
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ConfigError(f"endpoints: each endpoint needs a name of its own ({twice[0]!r} twice)")
    taken = sorted(set(named) & set(roles))
    if taken:
        raise ConfigError(
            f"endpoints: the name {taken[0]!r} is a role's; name the endpoint otherwise"
        )


def _decided(entries: list[Endpoint], role: str, defaults: Endpoint) -> tuple[Endpoint, ...]:
    """`entries` with what each leaves out taken from `defaults`, and a name each: the role's
    name for one endpoint, else its own or the role and its place (``target-2``)."""
    decided = []
    for index, entry in enumerate(entries):
        own_key = entry.api_key_env is not None or entry.api_key_file is not None
        name = role if len(entries) == 1 else (entry.name or f"{role}-{index + 1}")
        decided.append(
            Endpoint(
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


def _defaults(role: Role, base_url: str) -> Endpoint:
    return Endpoint(
        base_url=base_url,
        model=role.model,
        api_key_env=role.api_key_env,
        api_key_file=None if role.api_key_env else role.api_key_file,
        headers=role.headers,
        rpm=role.rpm,
        tpm=role.tpm,
        timeout_s=role.timeout_s,
    )


def _own(role: Role, target: Role) -> bool:
    """Whether a role calls other endpoints than the target's, or them otherwise."""
    own_key = role.api_key_env or role.api_key_file
    return bool(
        role.endpoints
        or role.base_url is not None
        or (role.model is not None and role.model != target.model)
        or role.timeout_s not in (None, target.timeout_s)
        or (own_key is not None and own_key not in (target.api_key_env, target.api_key_file))
        or role.headers not in (None, target.headers)
        or role.rpm not in (None, target.rpm)
        or role.tpm not in (None, target.tpm)
    )


def role_endpoints(
    name: str, role: Role, target: Role, base_url: str, *, shared: bool = True
) -> tuple[Endpoint, ...] | None:
    """The endpoints of role `name`, every field decided; `base_url` is where the one target
    endpoint is when the settings name none (the in-process simulator or local model). The
    target's are its own. Another role's are its own endpoints or URL, else the target's
    servers with its model (and key, headers, timeout, limits, where it has its own); None when
    it calls the target's endpoints as they are (`shared`: the same clients)."""
    if name == "target":
        entries = list(role.endpoints) or [Endpoint(base_url=role.base_url or base_url)]
        return _decided(entries, name, _defaults(role, base_url))
    if shared and not _own(role, target):
        return None
    targets = role_endpoints("target", target, target, base_url) or ()
    first = targets[0]
    own_key = role.api_key_env is not None or role.api_key_file is not None
    whole = effective(role, target)
    defaults = Endpoint(
        base_url=first.base_url,
        model=whole.model,
        api_key_env=role.api_key_env if own_key else first.api_key_env,
        api_key_file=role.api_key_file if own_key else first.api_key_file,
        headers=target.headers if role.headers is None else role.headers,
        rpm=whole.rpm,
        tpm=whole.tpm,
        timeout_s=whole.timeout_s,
    )
    if role.endpoints:
        entries = list(role.endpoints)
    elif role.base_url is not None:
        entries = [Endpoint(base_url=role.base_url)]
    else:  # the target's servers, with this role's model (or key, headers, timeout)
        entries = [
            Endpoint(
                base_url=one.base_url,
                api_key_env=None if own_key else one.api_key_env,
                api_key_file=None if own_key else one.api_key_file,
                headers=one.headers if role.headers is None else None,
                rpm=one.rpm if role.rpm is None else None,
                tpm=one.tpm if role.tpm is None else None,
                timeout_s=role.timeout_s or one.timeout_s,
                weight=one.weight,
            )
            for one in targets
        ]
    return _decided(entries, name, defaults)
