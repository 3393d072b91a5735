"""Access to the API: a bearer token, or the browser page's session cookie.

With ``VIDCORRECT_API_TOKEN`` set, every ``/api`` route but the few in :data:`OPEN_API_PATHS`
needs ``Authorization: Bearer <token>`` (compared in constant time) or a session cookie that
``POST /api/session/`` gave out for the token (see :mod:`server.access`). The page, its
static files and the operations endpoints (``/healthz``, ``/readyz``, ``/metrics``) are open by
design.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from jobs.errors import InvalidRequest, Unauthorized
from server.access import SESSION_COOKIE, SESSION_SECONDS
from server.json_body import read_json
from server.keys import ACCESS

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


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 (with ``WWW-Authenticate: Bearer``) for a protected route without the token."""
    if needs_access(request) and not request.app[ACCESS].allows(request):
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
    access = request.app[ACCESS]
    return web.json_response(_session_state(request, access.allows(request)))


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
    if not access.token_matches(token):
        raise Unauthorized("That is not the API token; check it and try again.", code="bad_token")
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
    """Forget the session: the browser drops the cookie."""
    response = web.json_response(_session_state(request, not request.app[ACCESS].required))
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return response
