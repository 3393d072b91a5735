"""Access to the API: who the request is (a bearer token, or the page's session cookie), and
whether their role may call its route.

With ``VIDCORRECT_API_TOKEN`` or ``VIDCORRECT_USERS_FILE`` set, every ``/api`` route but the few
in :data:`OPEN_API_PATHS` needs ``Authorization: Bearer <token>`` (the API token, compared in
constant time, or a user's token, see :mod:`jobs.users`) or a session cookie that
``POST /api/session/`` gave out for one and ``DELETE /api/session/`` has not revoked (see
:mod:`server.access`). Wrong tokens are slowed and then throttled per client address (429 with
``Retry-After``). Then the user's role must have the permission the route needs
(:mod:`server.permissions`), else 403 ``forbidden_role``. The page, its static files and the
operations endpoints (``/healthz``, ``/readyz``, ``/metrics``) are open by design.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from jobs.errors import InvalidRequest
from jobs.users import ANONYMOUS_PERMISSIONS, API_TOKEN_USER, Permission, User, least_role
from server.access import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    Access,
    Session,
    client_address,
    request_scheme,
)
from server.http_errors import RoleForbidden, Throttled, Unauthorized
from server.json_body import read_json
from server.keys import ACCESS, REDIS, REVOCATIONS, SETTINGS, SIGN_IN_THROTTLE
from server.permissions import required_permission, route_key

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


#: Where the access middleware leaves the request's user (``None``: the API is open).
USER: web.RequestKey[User | None] = web.RequestKey("user")


def current_user(request: web.Request) -> User | None:
    """The user the access middleware found for this request (``None``: the API is open)."""
    return request.get(USER)


def may(request: web.Request, permission: Permission) -> bool:
    """Whether this request's user (or, with the API open, anyone) has ``permission``."""
    user = current_user(request)
    if user is None:
        return not request.app[ACCESS].required and permission in ANONYMOUS_PERMISSIONS
    return user.may(permission)


def _session(request: web.Request) -> Session | None:
    """The valid (signed, unexpired) session the request's cookie stands for, if any."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return request.app[ACCESS].session_of(cookie) if cookie else None


async def _live_session(request: web.Request) -> Session | None:
    """The request's session, unless it was signed out."""
    session = _session(request)
    if session is None or await request.app[REVOCATIONS].revoked(request.app[REDIS], session):
        return None
    return session


async def user_of_token(access: Access, token: str) -> User | None:
    """The user ``token`` belongs to (a users file's token is checked off the event loop)."""
    if access.token_matches(token):
        return API_TOKEN_USER
    if access.users is None:
        return None
    return await asyncio.to_thread(access.users.authenticate, token)


def client_of(request: web.Request) -> str:
    """The client's address (behind a trusted proxy, the one it forwarded)."""
    return client_address(request, request.app[SETTINGS].trusted_proxies)


async def has_access(request: web.Request) -> bool:
    """Whether the request brings a token, or the cookie of a session not signed out (no
    throttling: for checks again during a request, such as an event stream's)."""
    access = request.app[ACCESS]
    if not access.required:
        return True
    header = request.headers.get("Authorization")
    if header is not None:
        token = access.bearer_token(header)
        return bool(token) and await user_of_token(access, token or "") is not None
    return await _live_session(request) is not None


async def authenticate(request: web.Request) -> User | None:
    """The request's user (``None`` when the API is open), or 401; a wrong token in the
    ``Authorization`` header counts as a failed sign-in of the client's address (slowed, then
    429 ``too_many_sign_ins``)."""
    access = request.app[ACCESS]
    if not access.required:
        return None
    header = request.headers.get("Authorization")
    if header is None:
        session = await _live_session(request)
        if session is None:
            raise Unauthorized(SIGN_IN_NEEDED)
        return session.user
    token = access.bearer_token(header)
    if not token:
        raise Unauthorized(SIGN_IN_NEEDED)
    throttle, client = request.app[SIGN_IN_THROTTLE], client_of(request)
    if (wait := throttle.retry_after(client, throttle.api_failures)) is not None:
        raise _too_many(wait)
    user = await user_of_token(access, token)
    if user is None:
        await asyncio.sleep(throttle.failed(client))
        raise Unauthorized(SIGN_IN_NEEDED)
    return user


SIGN_IN_NEEDED = (
    "This API needs a token: send the header Authorization: Bearer <token> (the server's "
    "VIDCORRECT_API_TOKEN, or your own from `vidcorrect users add`), or sign in on the page."
)


def _too_many(wait: int) -> Throttled:
    return Throttled(
        f"Too many wrong tokens from this address; try again in {wait} s.",
        retry_after=wait,
        code="too_many_sign_ins",
    )


def authorize(request: web.Request, user: User | None) -> None:
    """403 ``forbidden_role`` unless the request's user may call its route (the table in
    :mod:`server.permissions`)."""
    if request.match_info.http_exception is not None:
        return  # no such route: its 404 (or 405) tells nothing
    permission = required_permission(request)
    if may(request, permission):
        return
    role = least_role(permission).value
    who = f"you are signed in as {user.name} ({user.role.value})" if user else "nobody is signed in"
    raise RoleForbidden(
        f"{request.method} {route_key(request)[1]} needs the {role} role ({permission.value}); "
        f"{who}."
    )


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 (with ``WWW-Authenticate: Bearer``) for a protected route without a token, 403
    ``forbidden_role`` for one the user's role may not call."""
    if needs_access(request):
        user = await authenticate(request)
        request[USER] = user
        authorize(request, user)
    return await handler(request)


def _session_state(request: web.Request, authenticated: bool) -> dict[str, bool]:
    return {"auth_required": request.app[ACCESS].required, "authenticated": authenticated}


@routes.get("/api/session/")
async def show_session(request: web.Request) -> web.Response:
    """Whether the API needs a token, and whether this request has access (token or cookie)."""
    return web.json_response(_session_state(request, await has_access(request)))


@routes.get("/api/me/")
async def show_me(request: web.Request) -> web.Response:
    """Who this request is signed in as: name, role and permissions (``null`` name and role
    when the API is open)."""
    user = current_user(request)
    permissions = sorted(p.value for p in Permission if may(request, p))
    return web.json_response(
        {
            "name": user.name if user else None,
            "role": user.role.value if user else None,
            "permissions": permissions,
            "auth_required": request.app[ACCESS].required,
        }
    )


@routes.post("/api/session/")
async def sign_in(request: web.Request) -> web.Response:
    """Exchange a token (``{"token": "..."}``) for a session cookie, for the browser page."""
    access = request.app[ACCESS]
    body = await read_json(request)
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"token"} or not isinstance(token, str):
        raise InvalidRequest('Send the token as a JSON object: {"token": "..."}.')
    if not access.required:
        return web.json_response(_session_state(request, True))
    throttle, client = request.app[SIGN_IN_THROTTLE], client_of(request)
    if (wait := throttle.retry_after(client)) is not None:
        raise _too_many(wait)
    user = await user_of_token(access, token)
    if user is None:
        await asyncio.sleep(throttle.failed(client))
        raise Unauthorized(
            "That is not the API token nor a user's token; check it and try again.",
            code="bad_token",
        )
    throttle.succeeded(client)
    value = access.new_session(user=user)
    response = web.json_response(_session_state(request, True))
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request_scheme(request, request.app[SETTINGS].trusted_proxies) == "https",
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
