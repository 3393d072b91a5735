"""The HTTP access log, without what a client may have typed into a URL.

aiohttp's own access log writes the request line with its query string (``?filename=`` of a raw
upload is a patient's file name) plus Referer and User-Agent. This one logs the route that
served the request (``/api/videos/{video_id}/``, not the path as sent), the ids it named, the
status, the size and the time. :class:`RedactMalformedRequests` does the same for aiohttp's own
report of a request it could not parse, which quotes the offending bytes;
:class:`ReportStalledSends` makes an answer the kernel gave up sending (``TCP_USER_TIMEOUT``, see
:func:`server.app.bound_stalled_sends`) one info line instead of a traceback; and
:func:`silence_multipart_warnings` for its warnings about a multipart part's
``Content-Disposition`` header, which quote the header (and with it the upload's file name).
"""

from __future__ import annotations

import errno
import logging
import warnings

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam
from aiohttp.web_request import BaseRequest

log = structlog.get_logger("vidcorrect.access")

#: What the log says for a request no route matched (its path is whatever the client sent).
UNMATCHED = "(no route)"
LOGGED_IDS = ("task_id", "video_id")
#: Longest video id logged as a number (the routes take at most 18 digits).
MAX_LOGGED_ID_DIGITS = 18


def _match_info(request: BaseRequest) -> web.UrlMappingMatchInfo | None:
    """The router's match, or ``None`` for a request that never reached the router (aiohttp
    answers a malformed request itself, and asserts when asked for its match)."""
    if not isinstance(request, web.Request):
        return None
    try:
        return request.match_info
    except AssertionError:
        return None


def route_of(request: BaseRequest) -> str:
    """The canonical path of the route that serves ``request``, never the path as sent."""
    match = _match_info(request)
    resource = match.route.resource if match is not None else None
    return resource.canonical if resource is not None else UNMATCHED


def logged_ids(request: BaseRequest) -> dict[str, str | int]:
    """The task and video ids the route matched in the path (they passed its pattern); a video
    id as a number, as in the job lines (one type per field)."""
    match = _match_info(request)
    if match is None:
        return {}
    ids: dict[str, str | int] = {k: v for k, v in match.items() if k in LOGGED_IDS}
    video_id = ids.get("video_id")
    # Bounded: int() of a few thousand digits raises, here outside the error middleware.
    if (
        isinstance(video_id, str)
        and video_id.isascii()
        and video_id.isdigit()
        and len(video_id) <= MAX_LOGGED_ID_DIGITS
    ):
        ids["video_id"] = int(video_id)
    return ids


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


class RedactMalformedRequests(logging.Filter):
    """Keep the fact that aiohttp refused a malformed request, drop the bytes it quotes (a
    request line with its query string, a header value) and the traceback around them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record of a refused request in place; every record passes."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "malformed request refused: %s %s"
            record.args = (error.code, type(error).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class ReportStalledSends(logging.Filter):
    """aiohttp logs "Unhandled exception" with a traceback when ``sendfile`` fails because the
    kernel closed a connection whose client took nothing for ``VIDCORRECT_SEND_TIMEOUT``
    (``ETIMEDOUT``); that is a client gone, logged as one info line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite such a record in place; every record passes."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, OSError) and error.errno == errno.ETIMEDOUT:
            record.msg = "client took none of its answer for VIDCORRECT_SEND_TIMEOUT: closed"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def redact_malformed_requests() -> None:
    """Install :class:`RedactMalformedRequests` and :class:`ReportStalledSends` on aiohttp's
    server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    for kind in (RedactMalformedRequests, ReportStalledSends):
        if not any(isinstance(f, kind) for f in server_log.filters):
            server_log.addFilter(kind())


def silence_aiohttp_access_log() -> None:
    """Keep aiohttp's own access log quiet: it prints the request line, query string included
    (a raw upload names its file there); the server logs requests itself (server/http_log.py).
    """
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def silence_multipart_warnings() -> None:
    """Drop aiohttp's warnings about a ``Content-Disposition`` header it cannot read (an
    unquoted ``filename=`` with spaces, ``filename*=`` without a charset, ...): each quotes the
    header, file name included, and Python prints warnings to stderr. The upload goes on
    without the name (or, when not even the part's ``name`` can be read, is refused with 400
    ``missing_file``)."""
    for category in (BadContentDispositionHeader, BadContentDispositionParam):
        warnings.filterwarnings("ignore", category=category)
