"""Reading a request's JSON body: strict JSON, size- and time-limited, never a 500 for what a
client sends."""

from __future__ import annotations

import asyncio
import json
from typing import Any, NoReturn

from aiohttp import hdrs, web

from jobs.errors import InvalidRequest
from server.http_errors import ClientTooSlow, PayloadTooLarge, UnsupportedMedia
from server.keys import SETTINGS

#: The largest JSON body the app reads (its ``client_max_size``); uploads stream separately.
MAX_JSON_BODY = 1024 * 1024


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (``{}`` when empty).

    :class:`UnsupportedMedia` (415) unless the body is declared ``Content-Type:
    application/json``; only an empty body may come without a ``Content-Type`` (``curl -X
    POST``; a browser's form always sends one, and a cross-site page cannot send JSON without a
    preflight). :class:`InvalidRequest` if it is not strict JSON (``NaN`` and ``Infinity``
    included, and nesting or numbers too deep or long to parse); :class:`PayloadTooLarge` past
    the app's ``client_max_size`` (:data:`MAX_JSON_BODY`). The whole body must arrive within
    ``VIDCORRECT_HEADER_TIMEOUT`` seconds, as the request head must: a client that stalls or
    trickles gets :class:`ClientTooSlow` (408 ``body_too_slow``, the connection closed) instead
    of holding a connection and a handler for as long as it likes.
    """
    declared = hdrs.CONTENT_TYPE in request.headers
    if declared and request.content_type != JSON_TYPE:
        raise _not_json()
    seconds = request.app[SETTINGS].header_timeout
    try:
        async with asyncio.timeout(seconds):
            raw = await request.read()
    except TimeoutError:
        raise ClientTooSlow(
            f"The JSON body did not arrive within {seconds} s (VIDCORRECT_HEADER_TIMEOUT), so "
            "the request was cut off; send it again.",
            code="body_too_slow",
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"The JSON body is larger than the limit of {MAX_JSON_BODY} bytes; these requests are "
            "small (videos are uploaded to /api/videos/).",
            code="body_too_large",
        ) from None
    try:
        text = raw.decode("utf-8")  # JSON is UTF-8 (RFC 8259), whatever charset is claimed
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The request body is not valid JSON: it is not UTF-8 text.", code="invalid_json"
        ) from None
    if not text.strip():
        return {}
    if not declared:
        raise _not_json()
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"The request body is not valid JSON: {error.msg} at line "
            f"{error.lineno} column {error.colno}.",
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError):  # a 5000-digit number, or [[[[... 100000 deep
        raise InvalidRequest(
            "The request body is JSON that nests too deeply or has a number too long to read.",
            code="invalid_json",
        ) from None


JSON_TYPE = "application/json"


def _not_json() -> UnsupportedMedia:
    return UnsupportedMedia(
        "This route reads a JSON body: send it with Content-Type: application/json.",
        code="json_required",
    )


def _reject_constant(name: str) -> NoReturn:
    raise InvalidRequest(
        f"The request body is not valid JSON: {name} is not a JSON number.", code="invalid_json"
    )
