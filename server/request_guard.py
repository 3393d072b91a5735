"""Which requests the service answers at all: its own host names, and not other sites' pages.

*Host* (against DNS rebinding, where a page of ``evil.example`` re-resolves its own name to
127.0.0.1 and reads the API as same-origin): the ``Host`` header must name a loopback host
(``localhost``, ``127.0.0.0/8``, ``[::1]``), the address ``serve --host`` listens on, or an
entry of ``VIDCORRECT_ALLOWED_HOSTS``; anything else is 421 ``unknown_host``. The probes and
``/metrics`` are exempt: they hold no patient data and monitoring scrapes them by address.

*Origin* (against cross-site request forgery, including other ports of this host, which are
"same-site"): a request to ``/api`` (any method) or with an unsafe method (anywhere) is 403
``cross_site_request`` when its ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``, or when it
has an ``Origin`` (``null`` included) that is not this service's own: the scheme (the request's:
its connection's, or a trusted proxy's ``X-Forwarded-Proto``; https is taken too, for a TLS proxy
in front) and the host and port of the ``Host`` header. Requests without those
headers (curl, the CLI client, scripts) are not browsers' cross-site requests and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from jobs.settings import Settings, split_host
from server.access import is_loopback, request_scheme
from server.auth import OPEN_OPS_PATHS
from server.http_errors import Forbidden, MisdirectedRequest

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``Sec-Fetch-Site`` values of a request another site's page (or another port) made.
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class HostPolicy:
    """The host names one server answers to (:attr:`Settings.allowed_hosts` plus loopback)."""

    def __init__(self, settings: Settings) -> None:
        self.any_port: set[str] = set()
        self.with_port: set[tuple[str, int]] = set()
        for entry in settings.allowed_hosts:
            parsed = split_host(entry)
            assert parsed is not None  # validated by Settings
            host, port = parsed
            if port is None:
                self.any_port.add(host)
            else:
                self.with_port.add((host, port))

    def allows(self, host_header: str | None, scheme: str) -> bool:
        """Whether a request with this ``Host`` header (``None``: none) is for this server."""
        parsed = split_host(host_header) if host_header else None
        if parsed is None:
            return False
        host, port = parsed
        if is_loopback(host) or host in self.any_port:
            return True
        return (host, port or DEFAULT_PORTS.get(scheme, 80)) in self.with_port


def same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header) is the origin the request was sent to: the
    request's scheme (or https, as a TLS-terminating proxy in front makes it) with the host and
    port of ``host_header``."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in (scheme, "https") or parts.path or parts.query or parts.fragment:
        return False
    if "@" in parts.netloc:
        return False
    theirs, ours = split_host(parts.netloc), split_host(host_header)
    if theirs is None or ours is None:
        return False
    default = DEFAULT_PORTS[parts.scheme]
    return (theirs[0], theirs[1] or default) == (ours[0], ours[1] or default)


def request_guard_middleware(settings: Settings) -> Middleware:
    """421 for a foreign ``Host``, 403 for another site's request (see the module's text).

    Sits inside the error middleware, which turns the domain errors into JSON answers."""
    policy = HostPolicy(settings)

    @web.middleware
    async def request_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_OPS_PATHS:
            return await handler(request)
        host = request.headers.get(hdrs.HOST)
        scheme = request_scheme(request, settings.trusted_proxies)
        if host is None or not policy.allows(host, scheme):
            raise MisdirectedRequest(
                "This server does not answer to the host name this request was sent to. If it "
                "is the server's own name, add it to VIDCORRECT_ALLOWED_HOSTS.",
            )
        is_api = request.path == "/api" or request.path.startswith("/api/")
        if is_api or request.method not in SAFE_METHODS:
            site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
            origin = request.headers.get(hdrs.ORIGIN)
            if site in FOREIGN_FETCH_SITES or (
                origin is not None and not same_origin(origin, host, scheme)
            ):
                raise Forbidden(
                    "This request comes from another site's page (its Origin or Sec-Fetch-Site "
                    "header says so); the API answers only its own page and clients that are "
                    "not browsers.",
                    code="cross_site_request",
                )
        return await handler(request)

    return request_guard
