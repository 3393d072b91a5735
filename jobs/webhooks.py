"""Webhooks: a POST of the task's JSON to the systems around the service when a task ends.

When a write ends a task (SUCCESS, FAILURE, REVOKED), the task store queues, in the same MULTI,
one delivery per target (:func:`queue_deliveries`): the task's ``callback_url`` and
``VIDCORRECT_WEBHOOK_URL``. A delivery is a hash (``P:webhook:<delivery_id>``: where, the
ended record, its attempts) and an entry of the outbox (``P:webhooks``, by when it is due).
So a task's end and its deliveries are recorded together or not at all.

Every worker runs :func:`delivery_loop`: it claims the due deliveries (moving them :data:`LEASE`
seconds ahead, so a worker that dies mid-delivery only delays one), posts each from a thread
(the standard library's ``http.client``, :data:`HTTP_TIMEOUT`, no redirect followed) and
removes it on a 2xx; anything else is tried again after 1, 2, 4 ... s (at most an hour apart)
until a day has passed since the task ended, then given up. Jobs never wait for a delivery: the
end of a run writes two Redis entries more, nothing else. Delivery is at least once: a
receiver de-duplicates on ``X-Vidcorrect-Delivery``, the same on every attempt.

Each request is signed: ``X-Vidcorrect-Signature: sha256=<hex>``, the HMAC-SHA256 with
``VIDCORRECT_WEBHOOK_SECRET`` of ``<X-Vidcorrect-Timestamp>.<body>`` (the timestamp in epoch
seconds, so a receiver can refuse old replays). Only hosts in ``VIDCORRECT_WEBHOOK_HOSTS`` are
posted to (:func:`jobs.settings.webhook_target`), checked at submission and again at each
attempt. Tasks run by the server itself while Redis is away (the degraded mode) post nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.client
import json
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from jobs.errors import InvalidRequest
from jobs.keys import Keys
from jobs.model import TaskRecord
from jobs.settings import Settings, webhook_target
from jobs.task_json import task_json

log = structlog.get_logger("vidcorrect.webhooks")

#: Seconds a claimed delivery is held by its worker before another may try it again.
LEASE = 60
#: Seconds after a task's end its deliveries are given up (a day).
GIVE_UP_AFTER = 86400
#: Wait before the first retry (seconds); it doubles with each failed attempt ...
FIRST_RETRY = 1.0
#: ... up to this (seconds).
MAX_RETRY_DELAY = 3600.0
#: Seconds one attempt may take (connecting, sending, the answer's head).
HTTP_TIMEOUT = 10.0
#: Deliveries one worker claims per pass, posted concurrently.
BATCH = 8
#: Seconds between two looks at the outbox.
POLL_INTERVAL = 0.5

SIGNATURE_HEADER = "X-Vidcorrect-Signature"
TIMESTAMP_HEADER = "X-Vidcorrect-Timestamp"
DELIVERY_HEADER = "X-Vidcorrect-Delivery"
EVENT_HEADER = "X-Vidcorrect-Event"
#: The submissions' field naming where the task's end is posted.
CALLBACK_FIELD = "callback_url"
#: The ``X-Vidcorrect-Event`` of a task's end.
TASK_ENDED = "task.ended"

# KEYS: the outbox. ARGV: now, held until, how many. The due deliveries, moved to "held until".
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
"""


def check_callback_url(url: object, settings: Settings) -> str | None:
    """A submission's ``callback_url`` (``None`` when absent), or :class:`InvalidRequest`
    (400 ``callback_not_allowed``) when it is not an http(s) URL on a host
    ``VIDCORRECT_WEBHOOK_HOSTS`` lists."""
    if url is None:
        return None
    if not isinstance(url, str) or webhook_target(url, settings) is None:
        allowed = ", ".join(settings.webhook_hosts) or "none: this server sends no webhooks"
        raise InvalidRequest(
            "callback_url must be an http:// or https:// URL (no user, password or fragment, at "
            "most 2048 characters) on a host this server may post to (VIDCORRECT_WEBHOOK_HOSTS: "
            f"{allowed}).",
            code="callback_not_allowed",
        )
    return url


def targets(task: TaskRecord, webhook_url: str | None) -> list[str]:
    """Where the end of ``task`` is posted: its ``callback_url``, then the global URL."""
    return list(dict.fromkeys(url for url in (task.callback_url, webhook_url) if url))


def queue_deliveries(pipe: Pipeline, keys: Keys, task: TaskRecord, urls: list[str]) -> None:
    """Queue, in the MULTI that ends ``task``, one delivery of its record to each of ``urls``."""
    now = time.time()
    record = json.dumps(task_json(task))
    for url in urls:
        delivery_id = uuid.uuid4().hex
        pipe.hset(
            keys.webhook(delivery_id),
            mapping={"url": url, "task_id": task.task_id, "body": record, "created": repr(now)},
        )
        pipe.zadd(keys.webhooks, {delivery_id: now})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Vidcorrect-Signature`` of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


@dataclass(frozen=True)
class Delivery:
    """One delivery as stored."""

    delivery_id: str
    url: str
    task_id: str
    body: bytes
    created: float
    attempts: int


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt once ``attempts`` have failed."""
    return float(min(MAX_RETRY_DELAY, FIRST_RETRY * 2 ** max(0, attempts - 1)))


class Deliverer:
    """Posts the outbox's due deliveries; one per worker process."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._keys = settings.keys
        self._claim = redis.register_script(_CLAIM)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Deliver until :meth:`stop` (or cancelled), riding out Redis outages."""
        while not self._stopping.is_set():
            try:
                await self.deliver_due()
            except (RedisError, OSError) as error:
                log.warning("webhook outbox unreachable", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_INTERVAL)

    def stop(self) -> None:
        """Make :meth:`run` return once the deliveries it is making have ended (at most
        :data:`HTTP_TIMEOUT` later): a delivery cut off after its request was sent would be
        made again by another worker, a minute later."""
        self._stopping.set()

    async def deliver_due(self) -> int:
        """Claim and post the deliveries due now; how many were claimed."""
        now = time.time()
        raw = await self._claim(keys=[self._keys.webhooks], args=[now, now + LEASE, BATCH])
        ids = [item.decode() for item in cast(list[bytes], raw)]
        await asyncio.gather(*(self._deliver(delivery_id) for delivery_id in ids))
        return len(ids)

    async def _load(self, delivery_id: str) -> Delivery | None:
        raw = await cast(
            Awaitable[dict[bytes, bytes]], self._redis.hgetall(self._keys.webhook(delivery_id))
        )
        if not raw:
            return None
        return Delivery(
            delivery_id=delivery_id,
            url=raw[b"url"].decode(),
            task_id=raw[b"task_id"].decode(),
            body=raw[b"body"],
            created=float(raw[b"created"]),
            attempts=int(raw.get(b"attempts", b"0")),
        )

    async def _deliver(self, delivery_id: str) -> None:
        delivery = await self._load(delivery_id)
        if delivery is None:
            await self._redis.zrem(self._keys.webhooks, delivery_id)
            return
        with structlog.contextvars.bound_contextvars(
            task_id=delivery.task_id, delivery_id=delivery_id
        ):
            target = webhook_target(delivery.url, self._settings)
            if target is None:
                log.warning("webhook host no longer allowed; delivery dropped")
                await self._forget(delivery_id)
                return
            attempt = delivery.attempts + 1
            outcome = await asyncio.to_thread(self._post, delivery, attempt)
            if outcome is None:
                log.info("webhook delivered", host=target[1], attempt=attempt)
                await self._forget(delivery_id)
                return
            if time.time() - delivery.created >= GIVE_UP_AFTER:
                log.error("webhook given up", host=target[1], attempts=attempt, error=outcome)
                await self._forget(delivery_id)
                return
            delay = retry_delay(attempt)
            log.warning(
                "webhook failed; retrying",
                host=target[1],
                attempt=attempt,
                delay=delay,
                error=outcome,
            )
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    self._keys.webhook(delivery_id),
                    mapping={"attempts": attempt, "last_error": outcome},
                )
                pipe.zadd(self._keys.webhooks, {delivery_id: time.time() + delay}, xx=True)
                await pipe.execute()

    async def _forget(self, delivery_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.webhooks, delivery_id)
            pipe.delete(self._keys.webhook(delivery_id))
            await pipe.execute()

    def _post(self, delivery: Delivery, attempt: int) -> str | None:
        """POST the delivery (in a thread); ``None`` on a 2xx, else what went wrong."""
        secret = self._settings.webhook_secret or ""
        timestamp = str(int(time.time()))
        parts = urlsplit(delivery.url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "vidcorrect-webhook/1",
            EVENT_HEADER: TASK_ENDED,
            DELIVERY_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, delivery.body),
            "X-Vidcorrect-Attempt": str(attempt),
        }
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.hostname or "", parts.port, timeout=HTTP_TIMEOUT)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", path, body=delivery.body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)  # the answer is not used; redirects are not followed
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as error:
            return f"{type(error).__name__}: {error}"[:200]
        finally:
            connection.close()
