"""The audit trail: an append-only, hash-chained log of what people did.

Every upload, submission, cancel, download, review, deletion and device change is one entry:
when, who (a user name; ``None`` when the API is open; :data:`RETENTION_ACTOR` for the
retention sweep's deletions), the action, the ids it concerned (video,
task, device: never a file name nor anything of a patient), its outcome and HTTP status. Each
entry carries the SHA-256 of the one before (``prev``; 64 zeros for the first) and its own
``hash``, the SHA-256 of its canonical JSON (sorted keys, no spaces, without ``hash``), so
changing, removing or reordering any stored entry breaks the chain from there on:
:func:`verify` names the first entry that does not fit.

The entries are a Redis list (:meth:`Keys.audit`), entry ``seq`` at index ``seq``; Redis keeps
it across restarts (the embedded Redis's append-only file). Appending reads the last entry and
pushes the next in one optimistic transaction (WATCH), so concurrent server processes never
fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import WatchError

from jobs.errors import InvalidCursor
from jobs.keys import Keys
from jobs.model import JsonDict, utc_now

GENESIS = "0" * 64
#: Who an entry of the retention sweep names (no user name can look like it).
RETENTION_ACTOR = "(retention)"
#: Entries read from Redis at once (verifying, listing).
BATCH = 500
#: Entries a listing looks at for one page at most; past that it ends the page early with a
#: cursor (a page may then hold fewer entries than asked for, even none).
MAX_SCANNED = 20 * BATCH


class Action(StrEnum):
    """What an audit entry records."""

    UPLOAD = "upload"
    SUBMIT = "submit"
    CANCEL = "cancel"
    DOWNLOAD = "download"
    DOWNLOAD_ORIGINAL = "download_original"
    REVIEW = "review"
    DELETE_VIDEO = "delete_video"
    DELETE_OUTPUT = "delete_output"
    ADD_DEVICE = "add_device"
    DELETE_DEVICE = "delete_device"


class Outcome(StrEnum):
    OK = "ok"
    #: Refused for want of a permission or approval (401, 403).
    DENIED = "denied"
    #: Refused for another reason (a bad request, a conflict, not found...).
    REFUSED = "refused"
    #: The server failed (5xx).
    FAILED = "failed"

    @classmethod
    def of_status(cls, status: int) -> Outcome:
        if status < 400:
            return cls.OK
        if status in (401, 403):
            return cls.DENIED
        return cls.REFUSED if status < 500 else cls.FAILED


#: The ids an entry may carry, and what each may look like: never free text.
ID_FIELDS: dict[str, re.Pattern[str]] = {
    "video_id": re.compile(r"[0-9]{1,18}"),
    "task_id": re.compile(r"[A-Za-z0-9_-]{1,64}"),
    "device": re.compile(r"[a-z0-9_]{1,64}"),
    "review": re.compile(r"pending|approved|rejected"),
}


def canonical(value: JsonDict) -> bytes:
    """The one byte form of an entry that its hash is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(entry: JsonDict) -> str:
    """The SHA-256 (hex) of ``entry`` without its own ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def clean_ids(ids: dict[str, Any]) -> dict[str, str | int]:
    """The ids of :data:`ID_FIELDS` that look as they should (anything else is dropped)."""
    kept: dict[str, str | int] = {}
    for name, value in ids.items():
        pattern = ID_FIELDS.get(name)
        if pattern is None or value is None or not pattern.fullmatch(str(value)):
            continue
        kept[name] = int(value) if name == "video_id" else str(value)
    return kept


@dataclass(frozen=True)
class AuditQuery:
    """Which entries a listing asks for, newest first: at or after ``since``, of one user, of
    one action; ``limit`` at a time, before ``cursor`` (the one the previous page ended with)."""

    since: datetime | None = None
    user: str | None = None
    action: Action | None = None
    limit: int = 50
    cursor: str | None = None

    def before(self) -> int | None:
        """The ``seq`` this page starts below; InvalidCursor for a cursor no listing gave out."""
        if self.cursor is None:
            return None
        if not re.fullmatch(r"[0-9]{1,18}", self.cursor):
            raise InvalidCursor
        return int(self.cursor)

    def matches(self, entry: JsonDict) -> bool:
        return (self.user is None or entry.get("user") == self.user) and (
            self.action is None or entry.get("action") == self.action
        )


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: how many entries it checked and the first bad one."""

    entries: int
    #: The ``seq`` (its index in the list) of the first entry that does not fit, or ``None``.
    first_bad: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def parse_time(raw: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware datetime."""
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class AuditLog:
    """The audit trail in Redis, for one key prefix."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.audit

    async def append(
        self,
        action: Action,
        user: str | None,
        outcome: Outcome,
        *,
        status: int | None = None,
        ids: dict[str, Any] | None = None,
    ) -> JsonDict:
        """Append one entry, chained to the last; returns it as stored. ``status`` is the HTTP
        status of the request it records (``None`` for the retention sweep's)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._key)
                    length = int(await cast(Any, pipe.llen(self._key)))
                    last = await cast(Any, pipe.lindex(self._key, -1))
                    prev = json.loads(last)["hash"] if last is not None else GENESIS
                    entry: JsonDict = {
                        "seq": length,
                        "at": utc_now(),
                        "user": user,
                        "action": action.value,
                        "outcome": outcome.value,
                        "status": status,
                        "ids": clean_ids(ids or {}),
                        "prev": prev,
                    }
                    entry["hash"] = entry_hash(entry)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.rpush(self._key, canonical(entry))
                    await pipe.execute()
                    return entry
                except WatchError:
                    continue

    async def count(self) -> int:
        return int(await cast(Any, self._redis.llen(self._key)))

    async def _range(self, start: int, end: int) -> list[bytes]:
        return list(await cast(Any, self._redis.lrange(self._key, start, end)))

    async def verify(self) -> Verdict:
        """Check every entry: its JSON, its ``seq``, its link to the one before and its hash."""
        prev, seq = GENESIS, 0
        while True:
            raws = await self._range(seq, seq + BATCH - 1)
            for raw in raws:
                reason = _fault(raw, seq, prev)
                if reason is not None:
                    return Verdict(seq, seq, reason)
                prev = json.loads(raw)["hash"]
                seq += 1
            if len(raws) < BATCH:
                return Verdict(seq)

    async def list(self, query: AuditQuery) -> tuple[list[JsonDict], str | None]:
        """A page of entries, newest first, and the cursor of the next (``None`` at the end):
        the ``seq`` the page ended at, the next page lists the entries below it.
        InvalidCursor for a cursor no listing gave out."""
        before = query.before()
        count = await self.count()
        top = (count if before is None else min(before, count)) - 1
        found: list[JsonDict] = []
        scanned = 0
        while top >= 0:
            low = max(0, top - BATCH + 1)
            raws = await self._range(low, top)
            for seq, raw in zip(range(top, low - 1, -1), reversed(raws), strict=False):
                scanned += 1
                entry = _loads(raw)
                if entry is not None:
                    if query.since is not None and _at(entry) < query.since:
                        return found, None  # older than asked for: the listing ends here
                    if query.matches(entry):
                        found.append(entry)
                if len(found) == query.limit or scanned >= MAX_SCANNED:
                    return found, (str(seq) if seq > 0 else None)
            top = low - 1
        return found, None


def _loads(raw: bytes) -> JsonDict | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("seq"), int) else None


def _at(entry: JsonDict) -> datetime:
    try:
        return parse_time(str(entry.get("at")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _fault(raw: bytes, seq: int, prev: str) -> str | None:
    """Why the stored entry ``raw`` at index ``seq`` does not fit the chain (``None``: it fits)."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return "it is not JSON"
    if not isinstance(entry, dict):
        return "it is not a JSON object"
    if entry.get("seq") != seq:
        return f"its seq is {entry.get('seq')!r}, expected {seq} (an entry was removed or moved)"
    if entry.get("prev") != prev:
        return "its prev is not the hash of the entry before (the chain is broken here)"
    if entry.get("hash") != entry_hash(entry):
        return "its hash does not match its content (it was changed)"
    if raw != canonical(entry):
        return "it is not stored in canonical form"
    return None
