"""Access to the API: a bearer token, or the browser page's session cookie.

With ``VIDCORRECT_API_TOKEN`` set, every ``/api`` route but the few in :data:`OPEN_API_PATHS`
needs ``Authorization: Bearer <token>`` (compared in constant time) or a session cookie that
``POST /api/session/`` gave out for the token and ``DELETE /api/session/`` has not revoked (see
:mod:`server.access`). Failed sign-ins are throttled per client address (429 with
``Retry-After``). The page, its static files and the operations endpoints (``/healthz``,
``/readyz``, ``/metrics``) are open by design.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from jobs.errors import InvalidRequest
from server.access import SESSION_COOKIE, SESSION_SECONDS, Session
from server.http_errors import Throttled, Unauthorized
from server.json_body import read_json
from server.keys import ACCESS, REDIS, REVOCATIONS, SIGN_IN_THROTTLE

#: /api routes that answer without a token: the API description and signing in and out.
OPEN_API_PATHS = frozenset({"/api/openapi.json", "/api/session/"})
#: Routes outside /api that other parts of the service serve open by design (probes, metrics).
OPEN_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

routes = web.RouteTableDef()


def needs_access(request: web.Request) -> bool:
    """Whether a request is for a protected route: every /api route but the open ones.

    Decided on the route the router matched (its canonical path), so it is the same path the
    handler serves; a path no route matches is protected when it is under /api.
    """
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    if path in OPEN_OPS_PATHS or path in OPEN_API_PATHS:
        return False
    return path == "/api" or path.startswith("/api/")


def _session(request: web.Request) -> Session | None:
    """The valid (signed, unexpired) session the request's cookie stands for, if any."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return request.app[ACCESS].session_of(cookie) if cookie else None


async def has_access(request: web.Request) -> bool:
    """Whether the request brings the token, or the cookie of a session not signed out."""
    access = request.app[ACCESS]
    if not access.required:
        return True
    header = request.headers.get("Authorization")
    if header is not None:
        return access.bearer_matches(header)
    session = _session(request)
    if session is None:
        return False
    return not await request.app[REVOCATIONS].revoked(request.app[REDIS], session)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 (with ``WWW-Authenticate: Bearer``) for a protected route without the token."""
    if needs_access(request) and not await has_access(request):
        raise Unauthorized(
            "This API needs its token: send the header Authorization: Bearer <token> (the "
            "server's VIDCORRECT_API_TOKEN), or sign in on the page."
        )
    return await handler(request)


def _session_state(request: web.Request, authenticated: bool) -> dict[str, bool]:
    return {"auth_required": request.app[ACCESS].required, "authenticated": authenticated}


@routes.get("/api/session/")
async def show_session(request: web.Request) -> web.Response:
    """Whether the API needs a token, and whether this request has access (token or cookie)."""
    return web.json_response(_session_state(request, await has_access(request)))


@routes.post("/api/session/")
async def sign_in(request: web.Request) -> web.Response:
    """Exchange the token (``{"token": "..."}``) for a session cookie, for the browser page."""
    access = request.app[ACCESS]
    body = await read_json(request)
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"token"} or not isinstance(token, str):
        raise InvalidRequest('Send the token as a JSON object: {"token": "..."}.')
    if not access.required:
        return web.json_response(_session_state(request, True))
    throttle, client = request.app[SIGN_IN_THROTTLE], request.remote or ""
    if (wait := throttle.retry_after(client)) is not None:
        raise Throttled(
            f"Too many wrong tokens from this address; try again in {wait} s.",
            retry_after=wait,
            code="too_many_sign_ins",
        )
    if not access.token_matches(token):
        throttle.failed(client)
        raise Unauthorized("That is not the API token; check it and try again.", code="bad_token")
    throttle.succeeded(client)
    value = access.new_session()
    response = web.json_response(_session_state(request, True))
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


@routes.delete("/api/session/")
async def sign_out(request: web.Request) -> web.Response:
    """End the session: revoked on the server (a copy of the cookie no longer works), and the
    browser drops the cookie."""
    if (session := _session(request)) is not None:
        await request.app[REVOCATIONS].revoke(request.app[REDIS], session)
    response = web.json_response(_session_state(request, not request.app[ACCESS].required))
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return response
