"""The API token and the session cookies derived from it (see :mod:`server.auth`).

The cookie is not the token: it is a random session id and an expiry, signed with an HMAC key
derived from the token, so every server process with the same token accepts it, nobody can
recover the token from it, and a new token ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

SESSION_COOKIE = "vidcorrect_session"
#: How long a page session lasts (seconds); sign in again after that.
SESSION_SECONDS = 12 * 3600
_KEY_LABEL = b"vidcorrect session cookie v1"


@dataclass(frozen=True)
class Access:
    """The API token (``None``: the API is open) and the session cookies derived from it."""

    token: str | None
    _key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        secret = (self.token or "").encode()
        object.__setattr__(self, "_key", hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest())

    @property
    def required(self) -> bool:
        """True when requests must bring the token or a session."""
        return self.token is not None

    def token_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the token, compared in constant time."""
        if self.token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def bearer_matches(self, header: str) -> bool:
        """Whether an ``Authorization`` header is ``Bearer <the token>``."""
        scheme, _, credentials = header.strip().partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credentials.strip())

    def new_session(self, now: float | None = None) -> str:
        """A fresh cookie value: ``<random id>.<expiry, Unix seconds>.<signature>``."""
        expires = int(time.time() if now is None else now) + SESSION_SECONDS
        payload = f"{secrets.token_urlsafe(18)}.{expires}"
        return f"{payload}.{self._sign(payload)}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        """Whether a cookie value is one :meth:`new_session` made and has not expired."""
        if not self.required:
            return False
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return False
        expires = payload.rpartition(".")[2]
        if not (expires.isascii() and expires.isdigit()):
            return False
        return int(expires) > (time.time() if now is None else now)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def allows(self, request: web.Request) -> bool:
        """Whether the request brings the token or a valid session cookie."""
        if not self.required:
            return True
        header = request.headers.get("Authorization")
        if header is not None:
            return self.bearer_matches(header)
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and self.session_valid(cookie)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is only reachable from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
