"""What keeps a web page the operator happens to open from driving the service.

A page on any site can make the browser send requests to ``127.0.0.1:8750``: a "simple" POST
(``text/plain``, no preflight) goes out with the page's ``Origin``, and after DNS rebinding the
page's own host name resolves to the service, so the request even looks same-origin to the
browser, with the attacker's name in ``Host``. So every request must name this service in
``Host`` (its bound address, a loopback name when it listens on loopback, an IP address when it
listens on all of them, or a name the operator lists with ``--allow-host``), must not come from
another origin (``Origin``, ``Sec-Fetch-Site``), and a POST or PATCH must say
``Content-Type: application/json`` -- a type no page can send without a CORS preflight, which the
service never grants. Clients that are not browsers (curl, `ape-engine top`, scripts) send no
``Origin`` and are not affected. References: WHATWG Fetch, "CORS protocol" and "simple"
requests; W3C Fetch Metadata Request Headers (``Sec-Fetch-Site``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from engine.service.requests import RequestError

__all__ = ["HostPolicy", "browser_guard", "is_loopback", "json_bodies"]

_LOOPBACK_NAMES = frozenset({"localhost"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_JSON_BODY = ("POST", "PATCH")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


def _hostname(authority: str) -> str:
    """The host of ``host[:port]`` (``[v6]:port`` too), lower case, brackets off."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The names a request's ``Host`` may give for a service bound to `bound`."""

    bound: str = "127.0.0.1"
    extra: tuple[str, ...] = ()

    @classmethod
    def of(cls, bound: str, extra: Iterable[str] = ()) -> HostPolicy:
        return cls(bound, tuple(_hostname(name) for name in extra))

    def allows(self, authority: str) -> bool:
        host = _hostname(authority)
        if host in self.extra or host == _hostname(self.bound):
            return True
        wildcard = self.bound in _WILDCARDS
        if (wildcard or is_loopback(self.bound)) and is_loopback(host):
            return True
        return wildcard and _ip(host) is not None  # a rebinding attack needs a name, not an IP

    def names(self) -> str:
        shown = [self.bound] if self.bound not in _WILDCARDS else ["any IP address"]
        if self.bound in _WILDCARDS or is_loopback(self.bound):
            shown.append("localhost")
        return ", ".join([*shown, *self.extra])


def _check_origin(request: web.Request, authority: str) -> None:
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        same = parts.scheme == request.scheme and parts.netloc.lower() == authority.lower()
        if not same:
            raise RequestError(
                f"origin: requests from another site ({origin}) are refused; the API is for "
                "clients that are not web pages",
                "origin",
                status=403,
            )
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise RequestError(
            f"origin: a {site} request from a web page is refused", "origin", status=403
        )


def _check_content_type(request: web.Request) -> None:
    kind = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise RequestError(
            f"content-type: a {request.method} body must be sent as 'Content-Type: "
            f"application/json' (got {kind or 'none'!r})",
            "content-type",
            status=415,
        )


def browser_guard(hosts: HostPolicy) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware: ``Host`` names this service, and no other origin sent the request."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        authority = request.headers.get("Host")
        if authority is not None and not hosts.allows(authority):
            raise RequestError(
                f"host: this service answers to {hosts.names()}, not {authority!r} (its "
                "operator may add a name with --allow-host)",
                "host",
                status=403,
            )
        _check_origin(request, authority or "")
        return await handler(request)

    return guard


@web.middleware
async def json_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The middleware: a POST or PATCH body is sent as JSON (to a route that takes one: a
    404 or 405 says so first)."""
    if request.method in _JSON_BODY and request.match_info.http_exception is None:
        _check_content_type(request)
    return await handler(request)
