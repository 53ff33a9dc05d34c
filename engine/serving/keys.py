"""API keys: where a request carries one, and which keys a server accepts (401 otherwise).

As the OpenAI API reads them: ``Authorization: Bearer KEY``, or Azure's ``api-key`` header; and
Anthropic's ``x-api-key``.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from engine.serving.protocol import ApiError

__all__ = ["AcceptedKeys", "request_key"]


def request_key(request: web.Request) -> str | None:
    """The API key `request` carries (None: none, or an Authorization that is not Bearer)."""
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return request.headers.get("api-key") or request.headers.get("x-api-key")


class AcceptedKeys:
    """The keys a server accepts (none given: any key, or none at all); `kind` names the server
    in its messages."""

    def __init__(self, keys: Iterable[str], kind: str) -> None:
        self._keys = frozenset(keys)
        self._kind = kind

    def check(self, key: str | None) -> None:
        if not self._keys:
            return
        if key is None:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        if key not in self._keys:
            raise ApiError(
                401,
                f"Incorrect API key provided. This {self._kind} accepts only the keys it was "
                "started with (--require-key / --api-key-env).",
                code="invalid_api_key",
            )
