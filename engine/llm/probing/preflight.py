"""Before a study's first call: is this an LLM server, does it take the key, does it serve the
model? Answered within two seconds (a test holds it to that), so that a wrong URL, key or model
fails at once with what to do, instead of after a minute of retries counted as failures.

Two steps: ``GET /models`` where the server has it (a connection refused, a 401, or an answer
that is not JSON ends here), then one tiny call of the study's kind (one token, temperature 0,
a stop sequence, two choices), which also teaches the client the endpoint's dialect
(`engine.llm.protocol.dialect`) before any call that counts. What no retry can fix -- a refused
key, an unknown model, a request the server will not take -- is not retried and ends the check
at once. A transient error (500, 502, 503, 529, a timeout) is retried as the study's calls are
(the client's retry policy): a flaky server that would serve the study is not refused before
it starts, and one that stays down is refused saying the error is probably transient.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import orjson

from engine.errors import EndpointError, role_setting, setting
from engine.llm.endpoint import EndpointConfig
from engine.llm.errors import LLMError, RequestRejectedError
from engine.llm.probing.capabilities import Probed
from engine.llm.protocol.classification import classify_response, key_settings, redact
from engine.llm.protocol.dialect import Adapting

__all__ = ["Checked", "Preflight", "list_models", "preflight"]

_GET_TIMEOUT_S = 5.0
_SAY_OK = [{"role": "user", "content": "Say OK."}]


class Checked(Probed, Protocol):
    """What the preflight asks of an endpoint's client (`LLMClient` is one), beyond a probe's:
    where the endpoint is and how its key is given, the headers for a request outside the
    transport, and the dialect learned."""

    config: EndpointConfig

    @property
    def secret(self) -> str | None: ...

    @property
    def adapting(self) -> Adapting: ...

    def auth_headers(self) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the preflight found: the models the server lists (None: no /models route), the
    tiny call's round trip, and the adaptations the client made."""

    endpoint: str
    base_url: str
    model: str
    models: tuple[str, ...] | None
    latency_s: float
    adapted: str = ""

    def line(self) -> str:
        adapted = f"; adapted: {self.adapted}" if self.adapted else ""
        return (
            f"endpoint {self.endpoint!r} at {self.base_url}: model {self.model!r} answered in "
            f"{self.latency_s:.2f} s{adapted}"
        )


def _where(client: Checked) -> str:
    return f"endpoint {client.name!r} at {client.config.base_url}"


def _base_url(client: Checked) -> str:
    return setting(role_setting(client.name, "base_url"))


def _key_source(client: Checked) -> str:
    config = client.config
    if config.api_key_env:
        return f"the key from ${config.api_key_env}"
    if config.api_key_file:
        return f"the key in {config.api_key_file}"
    return "no key" if client.secret is None else "the key given"


async def list_models(client: Checked) -> tuple[str, ...] | None:
    """The model ids ``GET /models`` lists, or None when the server has no such route. Raises
    an `EndpointError` saying what to do when the server is not reachable, refuses the key, or
    answers with something that is not JSON."""
    return (await _listing(client)).models


@dataclass(frozen=True, slots=True)
class _Listing:
    """What ``GET /models`` answered: the models listed (None: no such route), and the message
    of a 400 -- a request with no parameters cannot be a bad one, and it is how a gateway
    (LiteLLM) answers a key it refuses."""

    models: tuple[str, ...] | None
    refused: str | None = None


async def _listing(client: Checked) -> _Listing:
    url = client.config.base_url.rstrip("/") + "/models"
    timeout = aiohttp.ClientTimeout(total=_GET_TIMEOUT_S, connect=client.config.connect_timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, headers=client.auth_headers()) as session,
            session.get(url) as response,
        ):
            body = await response.read()
            status, headers = response.status, response.headers
            kind = response.content_type
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise EndpointError(
            f"{_where(client)}: cannot connect ({redact(str(error), client.secret) or type(error).__name__}) "
            f"-- is the server running? Check the host and port of {_base_url(client)}",
            endpoint=client.name,
            code="unreachable",
        ) from None
    if status in (401, 403):
        failure = classify_response(
            status, body, headers, endpoint=client.name, secret=client.secret, url=url
        )
        raise EndpointError(
            f"{failure} (sent {_key_source(client)})", endpoint=client.name, code="unauthorized"
        )
    if status == 400:
        failure = classify_response(
            status, body, headers, endpoint=client.name, secret=client.secret, url=url
        )
        return _Listing(None, str(failure).partition(" -- ")[0])
    if status >= 400:
        return _Listing(None)  # no /models here (llama.cpp's older servers): the call decides
    return _Listing(_model_ids(client, body, kind))


def _model_ids(client: Checked, body: bytes, kind: str) -> tuple[str, ...] | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        shown = redact(body[:80].decode("utf-8", "replace"), client.secret)
        raise EndpointError(
            f"{_where(client)}: GET /models answered {kind or 'a body'} that is not JSON "
            f"({shown!r}...): this URL is not an OpenAI-compatible API -- check "
            f"{_base_url(client)} (where /chat/completions lives, usually ending in /v1)",
            endpoint=client.name,
            code="not_an_llm_server",
        ) from None
    listed = data.get("data") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return None
    return tuple(str(item["id"]) for item in listed if isinstance(item, dict) and "id" in item)


async def preflight(client: Checked, api: Literal["chat", "completions"]) -> Preflight:
    """Check `client`'s endpoint with ``GET /models`` and one tiny call of `api`; raise an
    `EndpointError` naming the endpoint and the fix when the study could not run on it."""
    listing = await _listing(client)
    models = listing.models
    started = time.perf_counter()
    try:
        if api == "completions":
            await client.complete("Say OK:", max_tokens=1, temperature=0.0, stop=["\n"], n=2)
        else:
            await client.chat(_SAY_OK, max_tokens=1, temperature=0.0, stop=["\n"], n=2)
    except LLMError as error:
        raise _explained(client, error, listing) from None
    return Preflight(
        endpoint=client.name,
        base_url=client.config.base_url,
        model=client.config.model,
        models=models,
        latency_s=time.perf_counter() - started,
        adapted=client.adapting.dialect.describe(),
    )


def _explained(client: Checked, error: LLMError, listing: _Listing) -> EndpointError:
    """`error` as the preflight's verdict, with what the server lists when the model is off,
    and the key to check when ``GET /models`` was refused too."""
    message = f"preflight: {error}"
    model, models = client.config.model, listing.models
    if error.status == 401:
        message += f" (sent {_key_source(client)})"
    elif listing.refused is not None and error.status == 400:
        message += (
            f"; GET /models was refused too ({listing.refused}): a gateway such as LiteLLM "
            f"answers 400 to a key it refuses -- check the key ({key_settings(client.name)}; "
            f"sent {_key_source(client)})"
        )
    if error.retryable:  # retried as a study's call is, and it failed every time
        message += (
            "; this is probably transient (the server failed every attempt of a call, as a "
            "study's calls are retried): try again in a moment, or check the server's health"
        )
    if isinstance(error, RequestRejectedError) and models and model not in models:
        close = difflib.get_close_matches(model, models, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(models[:8]) + (", ..." if len(models) > 8 else "")
        message += f" (model {model!r} is not among those served: {shown}{hint})"
    return EndpointError(message, status=error.status, endpoint=client.name, code=error.code)
