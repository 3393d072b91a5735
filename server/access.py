"""The API token and the session cookies derived from it (see :mod:`server.auth`).

The cookie is not the token: it is a random session id and an expiry, signed with an HMAC key
derived from the token, so every server process with the same token accepts it, nobody can
recover the token from it, and a new token ends every session. Signing out revokes the session
on the server too (:class:`Revocations`), so a copied cookie stops working then.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.keys import Keys

log = structlog.get_logger("vidcorrect.access")

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
        """Whether ``candidate`` is the token, compared in constant time. The token is printable
        ASCII, so anything else (a lone surrogate from JSON's ``"\\ud800"`` included, which
        has no UTF-8 form) simply is not it."""
        if self.token is None or not candidate.isascii():
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

    def session_of(self, value: str, now: float | None = None) -> Session | None:
        """The session a cookie value stands for, if :meth:`new_session` made it and it has not
        expired (whether it was signed out is :class:`Revocations`' to say)."""
        if not self.required or not value.isascii():  # headers may decode to surrogates
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        session_id, _, expires = payload.rpartition(".")
        if not (expires.isascii() and expires.isdigit()):
            return None
        if int(expires) <= (time.time() if now is None else now):
            return None
        return Session(session_id, int(expires))

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    """A page session: its random id and when its cookie expires (Unix seconds)."""

    id: str
    expires: int


class Revocations:
    """Signed-out sessions, so a copy of a cookie stops working at sign-out, not at its expiry.

    Kept in Redis (one key per session, expiring with the cookie) for every server process on it,
    and in this process's memory: while Redis is away, the sessions this process saw signed out
    stay refused, and the others are judged by their signature alone (the API keeps working for
    the page, as it does in the degraded mode), with a warning in the log.
    """

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._known: dict[str, int] = {}

    async def revoke(self, redis: Redis, session: Session) -> None:
        """Sign ``session`` out, everywhere when Redis answers, in this process at least."""
        self._remember(session)
        seconds = max(1, session.expires - int(time.time()))
        try:
            await redis.set(self._keys.revoked_session(session.id), b"1", ex=seconds)
        except RedisError as error:
            log.warning("session revoked in this process only: redis unreachable", error=str(error))

    async def revoked(self, redis: Redis, session: Session) -> bool:
        """Whether ``session`` was signed out (by any process, as far as Redis can tell)."""
        if session.id in self._known:
            return True
        try:
            revoked = bool(await redis.exists(self._keys.revoked_session(session.id)))
        except RedisError as error:
            log.warning("session revocations unknown: redis unreachable", error=str(error))
            return False
        if revoked:
            self._remember(session)
        return revoked

    def _remember(self, session: Session) -> None:
        now = time.time()
        for stale in [sid for sid, expires in self._known.items() if expires <= now]:
            del self._known[stale]
        self._known[session.id] = session.expires


#: Failed sign-ins one client address may make within :data:`SIGN_IN_WINDOW` seconds; past that,
#: its sign-ins get 429 until the oldest of them is that old.
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = 60
#: Client addresses the throttle remembers at most (the stalest are forgotten first).
MAX_THROTTLED_CLIENTS = 10_000


class SignInThrottle:
    """Failed sign-ins per client address, in this process's memory: guessing the token through
    ``POST /api/session/`` gets :data:`SIGN_IN_FAILURES` tries a :data:`SIGN_IN_WINDOW`."""

    def __init__(self, failures: int = SIGN_IN_FAILURES, window: float = SIGN_IN_WINDOW) -> None:
        self.failures = failures
        self.window = window
        self._clients: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or ``None`` when it may now."""
        recent = self._recent(client, time.monotonic())
        if recent is None or len(recent) < self.failures:
            return None
        return max(1, math.ceil(recent[0] + self.window - time.monotonic()))

    def failed(self, client: str) -> None:
        """Count a wrong token from ``client``."""
        now = time.monotonic()
        recent = self._clients.pop(client, None) or deque(maxlen=self.failures)
        recent.append(now)
        self._clients[client] = recent  # re-inserted: the dict's order is by latest failure
        if len(self._clients) > MAX_THROTTLED_CLIENTS:
            for stale in list(self._clients)[: len(self._clients) - MAX_THROTTLED_CLIENTS]:
                del self._clients[stale]

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures once it brought the token."""
        self._clients.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float] | None:
        recent = self._clients.get(client)
        if recent is None:
            return None
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._clients[client]
            return None
        return recent


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is only reachable from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
