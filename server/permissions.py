"""Who may call which route: the one table of the permission each protected route needs
(checked by :func:`server.auth.access_middleware`), and what each route is in the audit trail
(recorded by :func:`server.audit_trail.audit_middleware`).

A route is named by its method and the path the router matched (its canonical form, such as
``/api/tasks/{task_id}/output``). A protected route missing from :data:`ROUTE_PERMISSIONS`
needs the admin's :attr:`Permission.AUDIT` (nothing is open by omission; a test checks that
every route is listed).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from jobs.audit import Action
from jobs.users import Permission

P = Permission

ROUTE_PERMISSIONS: Mapping[tuple[str, str], Permission] = {
    ("GET", "/api/me/"): P.FOLLOW,
    ("POST", "/api/videos/"): P.UPLOAD,
    ("GET", "/api/videos/"): P.FOLLOW,
    ("GET", "/api/videos/{video_id}/"): P.FOLLOW,
    ("DELETE", "/api/videos/{video_id}/"): P.DELETE,
    ("GET", "/api/videos/{video_id}/file"): P.DOWNLOAD_ANY,
    ("GET", "/api/videos/{video_id}/frame"): P.FOLLOW,
    ("POST", "/api/video-apply-mask/{video_id}/"): P.SUBMIT,
    ("POST", "/api/video-remove-frames/{video_id}/"): P.SUBMIT,
    ("POST", "/api/video-analyze/{video_id}/"): P.SUBMIT,
    ("POST", "/api/video-reprocess/{video_id}/"): P.SUBMIT,
    ("GET", "/api/task-status/{task_id}/"): P.FOLLOW,
    ("DELETE", "/api/task-status/{task_id}/"): P.SUBMIT,
    ("POST", "/api/task-status/{task_id}/cancel/"): P.SUBMIT,
    ("GET", "/api/task-status/{task_id}/events"): P.FOLLOW,
    ("GET", "/api/tasks/"): P.FOLLOW,
    # Uploaders get approved outputs only (when approval is required): checked by the handler.
    ("GET", "/api/tasks/{task_id}/output"): P.DOWNLOAD_APPROVED,
    ("DELETE", "/api/tasks/{task_id}/output"): P.DELETE,
    ("POST", "/api/tasks/{task_id}/review"): P.REVIEW,
    ("GET", "/api/devices/"): P.FOLLOW,
    ("GET", "/api/devices/{name}"): P.FOLLOW,
    ("POST", "/api/devices/"): P.DEVICES,
    ("DELETE", "/api/devices/{name}"): P.DEVICES,
    ("GET", "/api/audit/"): P.AUDIT,
    ("GET", "/api/audit/verify"): P.AUDIT,
}

#: What a route's request is in the audit trail (routes not listed are not audited).
ROUTE_ACTIONS: Mapping[tuple[str, str], Action] = {
    ("POST", "/api/videos/"): Action.UPLOAD,
    ("POST", "/api/video-apply-mask/{video_id}/"): Action.SUBMIT,
    ("POST", "/api/video-remove-frames/{video_id}/"): Action.SUBMIT,
    ("POST", "/api/video-analyze/{video_id}/"): Action.SUBMIT,
    ("POST", "/api/video-reprocess/{video_id}/"): Action.SUBMIT,
    ("DELETE", "/api/task-status/{task_id}/"): Action.CANCEL,
    ("POST", "/api/task-status/{task_id}/cancel/"): Action.CANCEL,
    ("GET", "/api/tasks/{task_id}/output"): Action.DOWNLOAD,
    ("GET", "/api/videos/{video_id}/file"): Action.DOWNLOAD_ORIGINAL,
    ("POST", "/api/tasks/{task_id}/review"): Action.REVIEW,
    ("DELETE", "/api/videos/{video_id}/"): Action.DELETE_VIDEO,
    ("DELETE", "/api/tasks/{task_id}/output"): Action.DELETE_OUTPUT,
    ("POST", "/api/devices/"): Action.ADD_DEVICE,
    ("DELETE", "/api/devices/{name}"): Action.DELETE_DEVICE,
}


def route_key(request: web.Request) -> tuple[str, str]:
    """``(method, canonical path)`` of the route the router matched (a HEAD is its GET's)."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    method = "GET" if request.method == "HEAD" else request.method
    return method, path


def required_permission(request: web.Request) -> Permission:
    """The permission the request's route needs (:attr:`Permission.AUDIT`, an admin's, for a
    route the table does not list)."""
    return ROUTE_PERMISSIONS.get(route_key(request), Permission.AUDIT)


def audited_action(request: web.Request) -> Action | None:
    """What the request is in the audit trail, if anything."""
    return ROUTE_ACTIONS.get(route_key(request))
