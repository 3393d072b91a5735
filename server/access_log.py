"""What the logs say of a request, without what a client may have typed into a URL.

aiohttp's own access log writes the request line with its query string (``?filename=`` of a raw
upload is a patient's file name) plus Referer and User-Agent; it is off, and the service's lines
(:mod:`server.http_log`, :func:`server.app.request_context_middleware`) name the route that
served the request (:func:`route_of`: ``/api/videos/{video_id}/``, not the path as sent) and
the ids it matched (:func:`logged_ids`). :class:`RedactMalformedRequests` does the same for
aiohttp's own report of a request it could not parse, which quotes the offending bytes;
:class:`ReportStalledSends` makes an answer the kernel gave up sending (``TCP_USER_TIMEOUT``, see
:func:`server.app.bound_stalled_sends`) one info line instead of a traceback; and
:func:`silence_multipart_warnings` for its warnings about a multipart part's
``Content-Disposition`` header, which quote the header (and with it the upload's file name).
"""

from __future__ import annotations

import errno
import logging
import warnings

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

#: What the logs and the metrics say for a request no route matched (its path is whatever the
#: client sent).
UNMATCHED = "<unmatched>"
LOGGED_IDS = ("task_id", "video_id")
#: Longest video id logged as a number (the routes take at most 18 digits).
MAX_LOGGED_ID_DIGITS = 18


def route_of(request: web.Request) -> str:
    """The pattern of the route that serves ``request`` (``/api/videos/{video_id}/``), never
    the path as sent. A request no route matched (404, 405) has aiohttp's system route, which
    has no resource."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def logged_ids(request: web.Request) -> dict[str, str | int]:
    """The task and video ids the route matched in the path (they passed its pattern); a video
    id as a number, as in the job lines (one type per field)."""
    ids: dict[str, str | int] = {k: v for k, v in request.match_info.items() if k in LOGGED_IDS}
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
