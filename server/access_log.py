"""The HTTP access log, without what a client may have typed into a URL.

aiohttp's own access log writes the request line with its query string (``?filename=`` of a raw
upload is a patient's file name) plus Referer and User-Agent. This one logs the route that
served the request (``/api/videos/{video_id}/``, not the path as sent), the ids it named, the
status, the size and the time.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

log = structlog.get_logger("vidcorrect.access")

#: What the log says for a request no route matched (its path is whatever the client sent).
UNMATCHED = "(no route)"
LOGGED_IDS = ("task_id", "video_id")


def route_of(request: BaseRequest) -> str:
    """The canonical path of the route that serves ``request``, never the path as sent."""
    if isinstance(request, web.Request):
        resource = request.match_info.route.resource
        if resource is not None:
            return resource.canonical
    return UNMATCHED


def logged_ids(request: BaseRequest) -> dict[str, str]:
    """The task and video ids the route matched in the path (they passed its pattern)."""
    if not isinstance(request, web.Request):
        return {}
    return {k: v for k, v in request.match_info.items() if k in LOGGED_IDS}


class RouteAccessLogger(AbstractAccessLogger):
    """One structured line per request: method, route, ids, status, bytes, milliseconds."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write the line (called by aiohttp when the response has been sent)."""
        log.info(
            "request",
            method=request.method,
            route=route_of(request),
            status=response.status,
            bytes=response.body_length,
            ms=round(time * 1000, 1),
            **logged_ids(request),
        )
