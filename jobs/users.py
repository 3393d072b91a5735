"""People and roles: the users file (``VIDCORRECT_USERS_FILE``), its tokens and what each role
may do.

A user has a name, a role and a token. The file keeps no token, only a salted hash of it
(scrypt, a salt of its own per user) and a short public key id, which is the token's prefix
(``vcu_<key id>_<secret>``): a token names the one entry to check, and is checked in constant
time. The file also holds the secret the page's session cookies are signed with, so every
server process reading the same file accepts the same sessions.

``VIDCORRECT_API_TOKEN`` keeps working on its own (or beside the file) as one admin,
:data:`API_TOKEN_USER`.

The file is JSON::

    {"version": 1, "session_secret": "<hex>",
     "users": [{"name": "ana", "role": "reviewer", "key_id": "<hex>", "salt": "<hex>",
                "hash": "<hex>", "scrypt": {"n": 16384, "r": 8, "p": 1},
                "created_at": "2026-12-01T00:00:00.000Z"}]}

It is read again whenever it changes on disk, so ``vidcorrect users add`` takes effect on a
running server without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from jobs.errors import ConfigError, InvalidRequest
from jobs.model import utc_now


class Role(StrEnum):
    """What a person does with the service (each role may do all the one before it may)."""

    UPLOADER = "uploader"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Permission(StrEnum):
    """One thing a request may need to be allowed to do."""

    #: Upload an original.
    UPLOAD = "upload"
    #: Submit a task (and cancel one).
    SUBMIT = "submit"
    #: See videos, tasks, their events and the devices.
    FOLLOW = "follow"
    #: Download an output, once approved when ``VIDCORRECT_REQUIRE_APPROVAL`` is on.
    DOWNLOAD_APPROVED = "download_approved"
    #: Set an output's review state.
    REVIEW = "review"
    #: Download any output (approved or not) and the originals.
    DOWNLOAD_ANY = "download_any"
    #: Add and delete devices.
    DEVICES = "devices"
    #: Delete videos and outputs.
    DELETE = "delete"
    #: Read and verify the audit trail.
    AUDIT = "audit"


_UPLOADER = frozenset(
    {Permission.UPLOAD, Permission.SUBMIT, Permission.FOLLOW, Permission.DOWNLOAD_APPROVED}
)
_REVIEWER = _UPLOADER | {Permission.REVIEW, Permission.DOWNLOAD_ANY}
#: What each role may do.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.UPLOADER: _UPLOADER,
    Role.REVIEWER: _REVIEWER,
    Role.ADMIN: frozenset(Permission),
}
#: What a request may do when the API is open (no token, no users file): everything. (With
#: ``VIDCORRECT_REQUIRE_APPROVAL`` on, an output is still approved before it is downloaded:
#: only a signed-in reviewer or admin skips that, see :func:`skips_approval`.)
ANONYMOUS_PERMISSIONS = frozenset(Permission)


def skips_approval(user: User | None) -> bool:
    """Whether ``user`` downloads outputs that are not approved (to review them): reviewers and
    admins, never an anonymous request."""
    return user is not None and user.may(Permission.DOWNLOAD_ANY)


def least_role(permission: Permission) -> Role:
    """The first role (uploader, reviewer, admin) that has ``permission``."""
    return next(role for role in Role if permission in ROLE_PERMISSIONS[role])


@dataclass(frozen=True)
class User:
    """A signed-in person (or the API token's admin)."""

    name: str
    role: Role
    #: Which token it signed in with (the users file's key id; :data:`API_TOKEN_KEY` for the
    #: API token): a session ends when its user's token is replaced.
    key_id: str

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions


#: The key id of ``VIDCORRECT_API_TOKEN``'s admin.
API_TOKEN_KEY = "token"  # noqa: S105 - a key id, not a secret
#: The one admin ``VIDCORRECT_API_TOKEN`` stands for.
API_TOKEN_USER = User("api-token", Role.ADMIN, API_TOKEN_KEY)

#: What a user name may be.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOKEN_PREFIX = "vcu_"  # noqa: S105 - what tokens start with
_TOKEN = re.compile(r"vcu_([0-9a-f]{12})_([A-Za-z0-9_-]{32,128})")
#: scrypt's cost: 16 MiB and some 50 ms a check (each token is checked once per process, then
#: remembered as its SHA-256 in memory, see :class:`UserDirectory`).
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DUMMY_SALT = bytes(16)


def _scrypt(token: str, salt: bytes, params: Mapping[str, int]) -> bytes:
    return hashlib.scrypt(
        token.encode(), salt=salt, n=params["n"], r=params["r"], p=params["p"], dklen=32
    )


def parse_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        raise InvalidRequest(
            f"role must be one of {', '.join(r.value for r in Role)}, got {raw!r}"
        ) from None


class UsersFile:
    """The users file on disk: read, add a user, remove one. Writes replace the file atomically
    (a private temporary file renamed over it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        """The file's content; a new, empty one when it does not exist yet."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": 1, "session_secret": secrets.token_hex(32), "users": []}
        except OSError as error:
            raise ConfigError(f"VIDCORRECT_USERS_FILE cannot be read: {error.strerror}") from None
        return _validated(raw)

    def add(self, name: str, role: Role, *, replace: bool = False) -> str:
        """Add ``name`` with ``role`` (or, with ``replace``, give an existing one a new token and
        role); returns the new token, which is kept nowhere."""
        if not USER_NAME.fullmatch(name):
            raise InvalidRequest(
                "A user name is 1 to 64 letters, digits and . _ @ - (starting with a letter or "
                f"digit), got {name!r}."
            )
        data = self.read()
        users = [u for u in data["users"] if u["name"] != name]
        if len(users) != len(data["users"]) and not replace:
            raise InvalidRequest(
                f"There is a user {name!r} already; pass --replace to give them a new token."
            )
        key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        users.append(
            {
                "name": name,
                "role": role.value,
                "key_id": key_id,
                "salt": salt.hex(),
                "hash": _scrypt(token, salt, SCRYPT).hex(),
                "scrypt": dict(SCRYPT),
                "created_at": utc_now(),
            }
        )
        self._write({**data, "users": users})
        return token

    def remove(self, name: str) -> bool:
        """Remove ``name``; False when there is no such user."""
        data = self.read()
        users = [u for u in data["users"] if u["name"] != name]
        if len(users) == len(data["users"]):
            return False
        self._write({**data, "users": users})
        return True

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(temporary, self.path)


def _validated(raw: str) -> dict[str, Any]:
    """The users file's content, or :class:`ConfigError` saying what is wrong with it."""
    problem = "VIDCORRECT_USERS_FILE is not a users file this version reads"
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{problem}: it is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise ConfigError(f"{problem}: it needs a list of users")
    if not isinstance(data.get("session_secret"), str) or len(data["session_secret"]) < 32:
        raise ConfigError(f"{problem}: its session_secret is missing or short")
    for entry in data["users"]:
        try:
            ok = (
                USER_NAME.fullmatch(entry["name"]) is not None
                and entry["role"] in {r.value for r in Role}
                and re.fullmatch("[0-9a-f]{12}", entry["key_id"]) is not None
                and len(bytes.fromhex(entry["salt"])) >= 16
                and len(bytes.fromhex(entry["hash"])) == 32
                and all(isinstance(entry["scrypt"][k], int) for k in ("n", "r", "p"))
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{problem}: an entry lacks a valid name, role, key_id or hash")
    return data


@dataclass(frozen=True)
class _Entry:
    user: User
    salt: bytes
    hash: bytes
    scrypt: Mapping[str, int]


class UserDirectory:
    """The users of a users file, read again when it changes, and the tokens checked so far.

    A token that checked out is remembered (its SHA-256, in this process's memory only) with
    the entry it matched, so the next request with it costs no scrypt; replacing or removing
    the user in the file forgets it.
    """

    def __init__(self, path: Path) -> None:
        self._file = UsersFile(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, _Entry] = {}
        self._secret = b""
        self._checked: dict[bytes, str] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file (ConfigError when it is missing or malformed)."""
        path = self._file.path
        try:
            stat = path.stat()
        except OSError:
            raise ConfigError(
                "VIDCORRECT_USERS_FILE names no readable file; create it with: vidcorrect users "
                "add NAME --role admin (with the same VIDCORRECT_USERS_FILE)"
            ) from None
        data = self._file.read()
        entries = {
            u["key_id"]: _Entry(
                User(u["name"], Role(u["role"]), u["key_id"]),
                bytes.fromhex(u["salt"]),
                bytes.fromhex(u["hash"]),
                u["scrypt"],
            )
            for u in data["users"]
        }
        with self._lock:
            self._entries = entries
            self._secret = bytes.fromhex(data["session_secret"])
            self._stamp = (stat.st_mtime_ns, stat.st_size)
            self._checked.clear()

    def _fresh(self) -> None:
        """Read the file again if it changed (a stat per call); keep the last good copy when
        it has become unreadable."""
        try:
            stat = self._file.path.stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            try:
                self.reload()
            except ConfigError:
                return

    @property
    def session_secret(self) -> bytes:
        self._fresh()
        return self._secret

    def by_key(self, key_id: str) -> User | None:
        """The user whose token has this key id now (a session's user)."""
        self._fresh()
        entry = self._entries.get(key_id)
        return entry.user if entry is not None else None

    def authenticate(self, token: str) -> User | None:
        """The user ``token`` is the token of, or ``None``."""
        self._fresh()
        if not token.isascii():
            return None
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            known = self._checked.get(digest)
        if known is not None and known in self._entries:
            return self._entries[known].user
        match = _TOKEN.fullmatch(token)
        entry = self._entries.get(match.group(1)) if match else None
        if entry is None:  # as slow as a real check: no hint which key ids exist
            _scrypt(token, _DUMMY_SALT, SCRYPT)
            return None
        if not hmac.compare_digest(_scrypt(token, entry.salt, entry.scrypt), entry.hash):
            return None
        with self._lock:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[digest] = entry.user.key_id
        return entry.user

    def users(self) -> list[User]:
        self._fresh()
        return [entry.user for entry in self._entries.values()]
