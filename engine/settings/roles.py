"""Where a role's calls go -- the target (which carries out the instructions), the proposal
model and the judge are one type, `Role`: a model, one endpoint or several, a key, headers, a
timeout and limits. What the proposal and judge roles leave out is the target's; what one of a
role's several endpoints leaves out is its role's (docs/endpoints.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from engine.decoding import setting
from engine.study.settings import Group

__all__ = ["Api", "Connection", "Endpoint", "EndpointName", "Protocol", "Role", "Url"]

Api = Literal["chat", "completions"]
Protocol = Literal["openai", "anthropic"]
URL_PATTERN = r"^https?://"
Url = Annotated[str, msgspec.Meta(pattern=URL_PATTERN, description="an http:// or https:// URL")]
EndpointName = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$", description="an endpoint's name"),
]

_OPERATORS = (
    "endpoints belong to the service's operator; choose one by name with endpoint "
    "(and proposal_endpoint), or several as a list of names"
)
_LIMITS = (
    "the operator sets each endpoint's limits, timeout and transport; cap a study with "
    "PATCH rate_limits"
)
_CONNECTION = {"owner": "operator", "why": _OPERATORS, "resume": True}
_PACE = {"owner": "operator", "why": _LIMITS, "resume": True}


class Connection(Group, frozen=True, kw_only=True):
    """What a role and each of its endpoints may set: a field left out is the role's (for an
    endpoint) or the target's (for the proposal and judge roles)."""

    model: Annotated[str, setting("the {role} model", min_length=1, defines=True)] | None = None
    api_key_env: (
        Annotated[str, setting("environment variable with {its} key", metavar="VAR", **_CONNECTION)]
        | None
    ) = None
    api_key_file: (
        Annotated[str, setting("or a file holding only {its} key", metavar="FILE", **_CONNECTION)]
        | None
    ) = None
    headers: (
        Annotated[
            dict[str, str],
            setting(
                "extra HTTP header NAME=VALUE (repeatable); VALUE env:VAR or file:PATH is read "
                "from there (Azure: api-key=env:AZURE_OPENAI_API_KEY)",
                max_length=64,
                flag="header",
                metavar="NAME=VALUE",
                **_CONNECTION,
            ),
        ]
        | None
    ) = None
    timeout_s: (
        Annotated[
            float,
            setting(
                "seconds {a} call may take before it is retried",
                gt=0,
                le=86_400,
                flag="timeout",
                metavar="S",
                **_PACE,
            ),
        ]
        | None
    ) = None
    rpm: (
        Annotated[float, setting("requests per minute", ge=0.01, le=1e9, live=True, **_PACE)] | None
    ) = None
    tpm: (
        Annotated[float, setting("tokens per minute", ge=0.01, le=1e9, live=True, **_PACE)] | None
    ) = None


class Endpoint(Connection, frozen=True, kw_only=True):
    """One endpoint of a role that runs on several (``[[endpoints]]`` tables, a repeated
    ``--base-url``): its URL and what it has of its own. `weight` shares the calls in flight (2:
    twice those of an endpoint of weight 1); `name` is its name on screen and in the controls
    (default: the role and its place, ``target-2``)."""

    base_url: Url
    name: EndpointName | None = None
    weight: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 1.0


class Role(Connection, frozen=True, kw_only=True):
    """A role's model and where its calls go: one endpoint (`base_url`) or several
    (`endpoints`), the protocol and API it speaks."""

    base_url: (
        Annotated[
            str,
            setting(
                "OpenAI-compatible base URL, e.g. http://host:8000/v1; repeat it for several "
                "endpoints of the model (calls are spread over them; each one's limits apply)",
                pattern=URL_PATTERN,
                metavar="URL",
                **_CONNECTION,
            ),
        ]
        | None
    ) = None
    endpoints: Annotated[
        list[Endpoint],
        setting(
            "several endpoints instead of base_url, each with its URL and what it has of its "
            "own (TOML: [[endpoints]] tables; a repeated --base-url)",
            max_length=64,
            flag="",
            **_CONNECTION,
        ),
    ] = msgspec.field(default_factory=list)
    protocol: (
        Annotated[
            Protocol,
            setting(
                "openai (/chat/completions) or anthropic (the Messages API)",
                owner="operator",
                why=_OPERATORS,
            ),
        ]
        | None
    ) = None
    api: Annotated[Api, setting("API to call", defines=True)] | None = None
