"""The API token, the users file's users and the session cookies signed for them (see
:mod:`server.auth`); the sign-in throttle; which client a request comes from behind a trusted
proxy.

The cookie is not a token: it is a random session id, an expiry and the key id of its user's
token, signed with an HMAC key derived from the API token (and the users file's secret), so
every server process with the same configuration accepts it, nobody can recover a token from
it, and a new API token (or session secret) ends every session; a user's new token ends
theirs. Signing out revokes the session on the server too (:class:`Revocations`), so a copied
cookie stops working then.
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
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.keys import Keys
from jobs.users import API_TOKEN_KEY, API_TOKEN_USER, User, UserDirectory

log = structlog.get_logger("vidcorrect.access")

SESSION_COOKIE = "vidcorrect_session"
#: How long a page session lasts (seconds); sign in again after that.
SESSION_SECONDS = 12 * 3600
_KEY_LABEL = b"vidcorrect session cookie v1"


@dataclass(frozen=True)
class Access:
    """Who may use the API: the API token (one admin), the users of a users file, both, or
    neither (``required`` is then False: the API is open), and the session cookies signed for
    them."""

    token: str | None
    users: UserDirectory | None = None
    _key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        secret = (self.token or "").encode()
        object.__setattr__(self, "_key", hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest())

    @property
    def required(self) -> bool:
        """True when requests must bring a token or a session."""
        return self.token is not None or self.users is not None

    def token_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the API token, compared in constant time. The token is
        printable ASCII, so anything else (a lone surrogate from JSON's ``"\\ud800"`` included,
        which has no UTF-8 form) simply is not it."""
        if self.token is None or not candidate.isascii():
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def user_of_token(self, candidate: str) -> User | None:
        """The user ``candidate`` is the token of: the API token's admin, or a user of the
        users file (a scrypt check: call it off the event loop)."""
        if self.token_matches(candidate):
            return API_TOKEN_USER
        if self.users is not None:
            return self.users.authenticate(candidate)
        return None

    @staticmethod
    def bearer_token(header: str) -> str | None:
        """The credentials of an ``Authorization: Bearer <token>`` header, else ``None``."""
        scheme, _, credentials = header.strip().partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else None

    def bearer_matches(self, header: str) -> bool:
        """Whether an ``Authorization`` header is ``Bearer <the API token>``."""
        credentials = self.bearer_token(header)
        return credentials is not None and self.token_matches(credentials)

    def new_session(self, now: float | None = None, user: User = API_TOKEN_USER) -> str:
        """A fresh cookie value for ``user``:
        ``<random id>.<expiry, Unix seconds>.<user's key id>.<signature>``."""
        expires = int(time.time() if now is None else now) + SESSION_SECONDS
        payload = f"{secrets.token_urlsafe(18)}.{expires}.{user.key_id}"
        return f"{payload}.{self._sign(payload)}"

    def session_of(self, value: str, now: float | None = None) -> Session | None:
        """The session a cookie value stands for, if :meth:`new_session` made it, it has not
        expired and its user still has that token (whether it was signed out is
        :class:`Revocations`' to say)."""
        if not self.required or not value.isascii():  # headers may decode to surrogates
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        parts = payload.split(".")
        if len(parts) != 3:
            return None
        session_id, expires, key_id = parts
        if not (expires.isascii() and expires.isdigit()):
            return None
        if int(expires) <= (time.time() if now is None else now):
            return None
        user = self._user_of_key(key_id)
        if user is None:
            return None
        return Session(session_id, int(expires), user)

    def _user_of_key(self, key_id: str) -> User | None:
        if key_id == API_TOKEN_KEY:
            return API_TOKEN_USER if self.token is not None else None
        return self.users.by_key(key_id) if self.users is not None else None

    def _sign(self, payload: str) -> str:
        key = self._key
        if self.users is not None:  # the users file's secret too: every process reading it
            key = hmac.new(key, self.users.session_secret, hashlib.sha256).digest()
        digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    """A page session: its random id, when its cookie expires (Unix seconds), and its user."""

    id: str
    expires: int
    user: User = API_TOKEN_USER


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


#: Failed sign-ins one client address may make within :data:`SIGN_IN_WINDOW` seconds on the
#: page (``POST /api/session/``); past that, its sign-ins get 429 until the oldest of them is
#: that old.
SIGN_IN_FAILURES = 10
#: The same for wrong tokens in ``Authorization`` headers (scripts and clients, which may fire
#: a burst of requests with a stale token before they notice): past it, every request with a
#: token from that address gets 429.
API_TOKEN_FAILURES = 50
SIGN_IN_WINDOW = 60
#: Wrong tokens answered at once; each one after is answered :data:`SLOW_STEP` s later than
#: the one before, up to :data:`MAX_SLOWDOWN` s.
SLOW_AFTER = 3
SLOW_STEP = 0.1
MAX_SLOWDOWN = 1.0
#: Client addresses the throttle remembers at most (the stalest are forgotten first).
MAX_THROTTLED_CLIENTS = 10_000


class SignInThrottle:
    """Failed sign-ins per client address, in this process's memory: wrong tokens (on the page
    or in ``Authorization`` headers) are answered more and more slowly, and then refused for a
    while: :data:`SIGN_IN_FAILURES` tries a :data:`SIGN_IN_WINDOW` on the page,
    :data:`API_TOKEN_FAILURES` in headers (both count every wrong token of the address)."""

    def __init__(
        self,
        failures: int = SIGN_IN_FAILURES,
        window: float = SIGN_IN_WINDOW,
        api_failures: int = API_TOKEN_FAILURES,
    ) -> None:
        self.failures = failures
        self.api_failures = max(failures, api_failures)
        self.window = window
        self._clients: dict[str, deque[float]] = {}

    def retry_after(self, client: str, limit: int | None = None) -> int | None:
        """Seconds until ``client`` may try again (having made ``limit`` failures, by default
        the page's :attr:`failures`), or ``None`` when it may now."""
        limit = self.failures if limit is None else limit
        recent = self._recent(client, time.monotonic())
        if recent is None or len(recent) < limit:
            return None
        return max(1, math.ceil(recent[-limit] + self.window - time.monotonic()))

    def failed(self, client: str) -> float:
        """Count a wrong token from ``client``; returns how long to wait before answering it."""
        now = time.monotonic()
        recent = self._recent(client, now) or deque(maxlen=self.api_failures)
        self._clients.pop(client, None)
        recent.append(now)
        self._clients[client] = recent  # re-inserted: the dict's order is by latest failure
        if len(self._clients) > MAX_THROTTLED_CLIENTS:
            for stale in list(self._clients)[: len(self._clients) - MAX_THROTTLED_CLIENTS]:
                del self._clients[stale]
        return min(MAX_SLOWDOWN, SLOW_STEP * max(0, len(recent) - SLOW_AFTER))

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures once it signed in on the page with a right token."""
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


def client_address(request: web.Request, trusted: tuple[str, ...]) -> str:
    """The address a request comes from: the peer's, or, when the peer is a trusted proxy
    (``VIDCORRECT_TRUSTED_PROXIES``), the last address of its ``X-Forwarded-For`` that is not a
    trusted proxy too. Anyone else's ``X-Forwarded-For`` is ignored."""
    peer = request.remote or ""
    if not _is_trusted(peer, trusted):
        return peer
    hops = [
        hop.strip() for hop in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    ]
    for hop in reversed([h for h in hops if h]):
        if not _is_address(hop):
            return peer  # a malformed list: believe the proxy's own address only
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def request_scheme(request: web.Request, trusted: tuple[str, ...]) -> str:
    """``https`` or ``http``: the connection's own, or, from a trusted proxy, what its
    ``X-Forwarded-Proto`` says (the first hop's). Anyone else's header is ignored."""
    if request.scheme == "https":
        return "https"
    forwarded = request.headers.get("X-Forwarded-Proto")
    if forwarded and _is_trusted(request.remote or "", trusted):
        first = forwarded.split(",")[0].strip().lower()
        if first in ("http", "https"):
            return first
    return "http"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(net) for net in trusted)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is only reachable from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
