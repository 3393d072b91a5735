"""The audit trail over HTTP: every audited request (:data:`server.permissions.ROUTE_ACTIONS`)
becomes one entry of :mod:`jobs.audit` once it is answered, and admins read the trail.

An entry is written for each request that got past the sign-in (its user known, or the API
open), allowed or not: a 403 for want of a role or an approval is recorded as ``denied``. Requests
that never signed in (401, 429) are not: strangers cannot fill the trail. A download is
recorded when it starts at the file's first byte (no ``Range``, or one from byte 0), not for
each later range a player asks for. The ids come from the path and from what the handler noted
(:func:`note_ids`: the new video's or task's id); never a file name.

When Redis cannot be reached (the degraded mode), the request is answered and the entry that
could not be written is logged as an error, without its ids.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from jobs.audit import Action, AuditQuery, Outcome, parse_time
from jobs.errors import InvalidRequest
from server.auth import USER, current_user
from server.keys import AUDIT
from server.permissions import audited_action

log = structlog.get_logger("vidcorrect.audit")

routes = web.RouteTableDef()

#: Where handlers leave the ids an audit entry should carry besides the path's.
AUDIT_IDS: web.RequestKey[dict[str, Any]] = web.RequestKey("audit_ids")
_PATH_IDS = {"video_id": "video_id", "task_id": "task_id", "name": "device"}
_FROM_START = re.compile(r"\s*bytes\s*=\s*0\s*-")


def note_ids(request: web.Request, **ids: Any) -> None:
    """Add ids (``video_id``, ``task_id``, ``device``, ``review``) to the request's entry."""
    if AUDIT_IDS not in request:
        request[AUDIT_IDS] = {}
    request[AUDIT_IDS].update(ids)


def _audited(request: web.Request) -> Action | None:
    action = audited_action(request)
    if action is Action.DOWNLOAD or action is Action.DOWNLOAD_ORIGINAL:
        if request.method == "HEAD":
            return None
        ranges = request.headers.get("Range")
        if ranges is not None and not _FROM_START.match(ranges):
            return None
    return action


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record the audited requests, with the status they were answered with. Sits outside the
    error middleware, so it sees every error as the answer it became."""
    response = await handler(request)
    action = _audited(request)
    if action is not None and USER in request:
        await _record(request, action, response.status)
    return response


async def _record(request: web.Request, action: Action, status: int) -> None:
    user = current_user(request)
    ids = {
        field: request.match_info[name]
        for name, field in _PATH_IDS.items()
        if name in request.match_info
    }
    ids.update(request.get(AUDIT_IDS, {}))
    try:
        await request.app[AUDIT].append(
            action, user.name if user else None, Outcome.of_status(status), status=status, ids=ids
        )
    except RedisError as error:
        log.error(
            "audit entry not written: redis unreachable",
            action=action.value,
            status=status,
            error=str(error),
        )


DEFAULT_PAGE = 50
MAX_PAGE = 500


@routes.get("/api/audit/")
async def list_audit(request: web.Request) -> web.Response:
    """Audit entries, newest first: ``?since=&user=&action=&limit=&cursor=`` (admins)."""
    query = request.query
    since = None
    if raw := query.get("since"):
        try:
            since = parse_time(raw)
        except ValueError:
            raise InvalidRequest(
                f"since must be an ISO 8601 time such as 2026-12-01T08:00:00Z, got {raw!r}."
            ) from None
    action = None
    if raw := query.get("action"):
        try:
            action = Action(raw)
        except ValueError:
            choices = ", ".join(a.value for a in Action)
            raise InvalidRequest(f"action must be one of {choices}, got {raw!r}.") from None
    raw_limit = query.get("limit")
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise InvalidRequest(f"limit must be a whole number between 1 and {MAX_PAGE}.")
        limit = int(raw_limit)
    entries, next_cursor = await request.app[AUDIT].list(
        AuditQuery(
            since=since,
            user=query.get("user") or None,
            action=action,
            limit=limit,
            cursor=query.get("cursor") or None,
        )
    )
    return web.json_response({"entries": entries, "next_cursor": next_cursor})


@routes.get("/api/audit/verify")
async def verify_audit(request: web.Request) -> web.Response:
    """Check the whole chain (admins): ``{"ok", "entries", "first_bad", "reason"}``."""
    verdict = await request.app[AUDIT].verify()
    return web.json_response(
        {
            "ok": verdict.ok,
            "entries": verdict.entries,
            "first_bad": verdict.first_bad,
            "reason": verdict.reason,
        }
    )
