"""HTTP calls to the vidcorrect API (standard library only): JSON in and out, failures as
:class:`ApiError` (the server answered with an error) or :class:`Unreachable` (no answer)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from email.message import Message
from typing import Any

JsonDict = dict[str, Any]
Body = bytes | Iterable[bytes]

#: Seconds a JSON request may wait for each read of its answer.
TIMEOUT = 60.0


class ClientError(Exception):
    """A failure the client reports as one line on stderr, with an exit status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The server answered with an error status; ``message`` is the server's own."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class Unreachable(ClientError):
    """No usable answer: refused, unknown host, timed out, or the connection was lost (``lost``:
    it broke after it was made)."""

    def __init__(self, message: str, *, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are refused: following one would send the API token to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Api:
    """The API of one server, called with the token (if any) as ``Authorization: Bearer``."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the server URL must look like http://host:port, got {base_url!r}")
        if token and not (token.isprintable() and token.strip() == token and " " not in token):
            raise ValueError("the API token must be one word of printable characters")
        self.base = base_url.rstrip("/")
        self.token = token or None
        self._opener = urllib.request.build_opener(_NoRedirects)

    def url(self, path: str, query: Mapping[str, object] | None = None) -> str:
        """The absolute URL of an API path (``/api/...``), with the query's non-empty values."""
        url = self.base + path
        pairs = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        return f"{url}?{urllib.parse.urlencode(pairs)}" if pairs else url

    def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> http.client.HTTPResponse:
        """Send a request; returns the open response of a 2xx answer (close it when done)."""
        request = urllib.request.Request(  # noqa: S310 (the scheme was checked in __init__)
            self.url(path, query), data=body, method=method, headers=self._headers(headers)
        )
        try:
            response = self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            with error:
                raise api_error(error.code, error.headers, _read_quietly(error)) from None
        except urllib.error.URLError as error:
            raise self.unreachable(error.reason) from None
        except (OSError, http.client.HTTPException) as error:
            raise self.unreachable(error) from None
        assert isinstance(response, http.client.HTTPResponse)
        return response

    def get_json(self, path: str, query: Mapping[str, object] | None = None) -> JsonDict:
        """GET a JSON answer."""
        return self.read_json(self.open("GET", path, query=query))

    def send_json(
        self,
        method: str,
        path: str,
        body: JsonDict | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JsonDict:
        """POST (or another method) a JSON body; returns the JSON answer."""
        data = json.dumps(body or {}).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        return self.read_json(self.open(method, path, body=data, headers=sent))

    def read_json(self, response: http.client.HTTPResponse) -> JsonDict:
        """Read and close a response whose body is a JSON object."""
        with response:
            try:
                raw = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise self.unreachable(error) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ApiError(response.status, "not_json", self._not_api(response.status)) from None
        if not isinstance(answer, dict):
            raise ApiError(response.status, "not_json", self._not_api(response.status))
        return answer

    def unreachable(self, reason: object, *, lost: bool | None = None) -> Unreachable:
        """The error for a request that got no usable answer, saying why in plain words;
        ``lost`` (guessed from ``reason`` when not given): the connection broke once made."""
        if lost is None:
            lost = isinstance(reason, _LOST)
        if lost:
            detail = "" if isinstance(reason, _LOST) else f" ({reason})"
            return Unreachable(f"the connection to {self.base} was lost{detail}", lost=True)
        return Unreachable(f"the server isn't reachable at {self.base} ({_describe(reason)})")

    def _not_api(self, status: int) -> str:
        return f"the answer from {self.base} (HTTP {status}) is not the vidcorrect API's JSON"

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "vidcorrect-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers


def api_error(status: int, headers: Message, raw: bytes) -> ApiError:
    """The :class:`ApiError` of an error answer: the API's ``{"error": {"code", "message"}}``,
    or, from something else (a proxy), its status line."""
    retry_after: float | None = None
    with contextlib.suppress(ValueError):
        retry_after = float(headers.get("Retry-After") or "")
    code, message = f"http_{status}", f"HTTP {status} from the server"
    try:
        error = json.loads(raw)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        if status in (301, 302, 303, 307, 308) and headers.get("Location"):
            message = (
                f"HTTP {status}: the server redirects to {headers['Location']}; "
                "use that address as --url"
            )
    return ApiError(status, code, message, retry_after)


_LOST = (ConnectionResetError, BrokenPipeError, http.client.HTTPException)


def _read_quietly(response: urllib.error.HTTPError) -> bytes:
    try:
        return response.read()
    except (OSError, http.client.HTTPException):
        return b""


def _describe(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, TimeoutError):
        return "no answer in time"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason.reason or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
