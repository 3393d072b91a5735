"""The one place where errors become HTTP answers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from jobs.errors import (
    Conflict,
    InvalidCursor,
    InvalidRequest,
    NotFound,
    QueueFull,
    RetryLater,
    RoiUncertain,
    Unprocessable,
    UnusableVideo,
    VidcorrectError,
)
from jobs.failures import NO_SPACE_ERRNOS
from server.http_errors import (
    ClientTooSlow,
    Forbidden,
    MisdirectedRequest,
    PayloadTooLarge,
    ServerBusy,
    Throttled,
    Unauthorized,
    UnsupportedMedia,
)

log = structlog.get_logger("vidcorrect.http")
#: Status logged for a request whose client went away before it was answered (as nginx does).
CLIENT_GONE = 499

#: The status of every error class, the domain's and the server's own (a subclass not listed
#: takes its nearest listed base's).
HTTP_STATUS: dict[type[VidcorrectError], int] = {
    InvalidRequest: 400,
    InvalidCursor: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    ClientTooSlow: 408,
    Conflict: 409,
    RoiUncertain: 409,
    PayloadTooLarge: 413,
    UnsupportedMedia: 415,
    UnusableVideo: 415,
    MisdirectedRequest: 421,
    Unprocessable: 422,
    QueueFull: 429,
    Throttled: 429,
    ServerBusy: 503,
}


def error_response(status: int, code: str, message: str) -> web.Response:
    """The JSON error body every failing request gets."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _status_of(error: VidcorrectError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and aiohttp's own HTTP errors to JSON; never leak a traceback."""
    try:
        return await handler(request)
    except VidcorrectError as error:
        status = _status_of(error)
        if status == 500:
            log.error("domain error without an HTTP status", code=error.code)
        response = error_response(status, error.code, error.message)
        if isinstance(error, RetryLater):
            response.headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="vidcorrect"'
        if isinstance(error, ClientTooSlow):
            await _answer_and_close(request, response)
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = error_response(error.status, *_describe_http_error(request, error))
        if "Allow" in error.headers:  # a 405 says what is allowed
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except RedisError as error:
        log.warning("redis unreachable", error=str(error))
        response = error_response(
            503, "store_unavailable", "The task store is unreachable right now; try again shortly."
        )
        response.headers["Retry-After"] = "5"
        return response
    except OSError as error:
        if isinstance(error, ConnectionError) and client_gone(request):
            # Nobody to answer (a closed tab, a cancelled upload): one line, no traceback.
            log.info("client went away before the answer")
            return error_response(CLIENT_GONE, "client_gone", "The client went away.")
        log.error("storage error", errno=error.errno, error=error.strerror)
        if error.errno in NO_SPACE_ERRNOS:
            response = error_response(
                507,
                "no_space",
                "The server's storage is full; nothing of this request was kept. Try again "
                "later, once space has been freed.",
            )
            response.headers["Retry-After"] = "300"
            return response
        response = error_response(
            503,
            "storage_unavailable",
            "The server could not use its storage right now; try again shortly.",
        )
        response.headers["Retry-After"] = "30"
        return response
    except Exception:
        log.exception("request failed")
        return error_response(
            500, "internal_error", "The server failed to handle this request; it was logged."
        )


def client_gone(request: web.Request) -> bool:
    """Whether the client's connection has closed (there is nobody left to answer)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def _answer_and_close(request: web.Request, response: web.Response) -> None:
    """Send ``response`` now and close the connection, without reading the rest of the body
    (aiohttp would otherwise read, and wait for, a slow client's body for up to 10 s more)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()


def _describe_http_error(request: web.Request, error: web.HTTPException) -> tuple[str, str]:
    if error.status == 404:
        return "not_found", f"There is no endpoint {request.method} {request.path}."
    if error.status == 405:
        return "method_not_allowed", f"{request.method} is not allowed on {request.path}."
    if error.status == 413:
        return "too_large", "The request body is too large."
    return error.reason.lower().replace(" ", "_"), error.text or error.reason
