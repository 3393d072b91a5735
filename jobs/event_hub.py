"""Live task events: one Redis reader per server process, fanned out to every SSE client.

The worker logs each state change of a task to the task's event log, a capped Redis Stream
(see :class:`jobs.redis_store.RedisTaskStore`, whose ``follow`` is this hub's).
:class:`EventHub` reads the logs of all tasks that have clients here with one blocking
``XREAD`` on one dedicated connection, and hands each entry to the queues of those clients.
A client that connects gets the current state (the newest entry) or, resuming with
``Last-Event-ID``, every entry after that id, then the live ones: no entry is missed or
repeated, since backlog and live entries meet at the id the hub had read up to when the client
joined.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.keys import Keys
from jobs.task_store import TaskEvent

log = structlog.get_logger("vidcorrect.events")

#: How long one XREAD waits; also the longest wait before a newly followed task is read live.
BLOCK_MS = 250
#: A client this many events behind is dropped (it reconnects and resumes with Last-Event-ID).
MAX_BACKLOG = 1000


def stream_id(value: str) -> tuple[int, int]:
    """A Redis Stream id as a comparable pair."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class _Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue()
        self.dropped = False

    def push(self, event: TaskEvent | None) -> None:
        """Queue an event; ``None`` ends the stream. A client too far behind is ended too."""
        if self.dropped:
            return
        if event is None or self.queue.qsize() >= MAX_BACKLOG:
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


@dataclass(eq=False)
class _Feed:
    key: str
    last_id: str  # newest entry the hub has read (or found) for this log
    subscribers: set[_Subscriber] = field(default_factory=set)


class EventHub:
    """Follows the event logs of the tasks that have clients on this server."""

    def __init__(self, redis: Redis, keys: Keys, reader: Redis) -> None:
        self._redis = redis
        self._keys = keys
        self._reader = reader  # a dedicated single connection, used only for XREAD
        self._feeds: dict[str, _Feed] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def client_count(self) -> int:
        """SSE clients following a task on this server."""
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    def start(self) -> None:
        """Start the reader loop."""
        self._task = asyncio.create_task(self._read_loop(), name="event-hub")

    def close_streams(self) -> None:
        """End every client's stream (at server shutdown); new ones end at once."""
        self._closing = True
        for feed in self._feeds.values():
            for subscriber in feed.subscribers:
                subscriber.push(None)

    async def stop(self) -> None:
        """Stop the reader loop and close its connection."""
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reader.aclose()

    @contextlib.asynccontextmanager
    async def follow(
        self, task_id: str, last_event_id: str | None
    ) -> AsyncIterator[AsyncIterator[TaskEvent]]:
        """Follow a task's events: after ``last_event_id``, or from its newest entry."""
        key = self._keys.task_events(task_id)
        feed = self._feeds.get(key)
        if feed is None:
            newest = await self._redis.xrevrange(key, count=1)
            feed = self._feeds.get(key)  # another client may have created it meanwhile
            if feed is None:
                feed = _Feed(key, newest[0][0].decode() if newest else "0-0")
                self._feeds[key] = feed
                self._changed.set()
        # No await between reading the hub's position and joining: every live entry this
        # subscriber gets is newer than `known`, and the backlog ends at `known`.
        known = feed.last_id
        subscriber = _Subscriber()
        feed.subscribers.add(subscriber)
        try:
            backlog = await self._backlog(key, last_event_id, known)
            yield self._events(subscriber, backlog, last_event_id)
        finally:
            feed.subscribers.discard(subscriber)
            if not feed.subscribers and self._feeds.get(key) is feed:
                del self._feeds[key]

    async def _backlog(self, key: str, after: str | None, known: str) -> list[TaskEvent]:
        if known == "0-0":
            return []
        if after is None or stream_id(after) >= stream_id(known):
            rows = await self._redis.xrevrange(key, max=known, count=1)
            newest = [_to_event(entry_id, fields) for entry_id, fields in rows]
            if after is None:
                return newest
            # Resumed at or past the newest entry: nothing to replay, unless the task has
            # ended; then its end again, so that the stream always ends for a finished task.
            return [event for event in newest if event.is_end]
        rows = await self._redis.xrange(key, min=f"({after}", max=known)
        return [_to_event(entry_id, fields) for entry_id, fields in rows]

    async def _events(
        self, subscriber: _Subscriber, backlog: list[TaskEvent], after: str | None
    ) -> AsyncIterator[TaskEvent]:
        for event in backlog:
            yield event
        floor = stream_id(after) if after else (0, 0)
        if self._closing:
            return
        while True:
            item = await subscriber.queue.get()
            if item is None:
                return
            if item.is_end or stream_id(item.id) > floor:  # an end ends even a bogus resume
                yield item

    async def _read_loop(self) -> None:
        failures = 0
        while True:
            if not self._feeds:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._changed.wait()
                continue
            streams: dict[Any, Any] = {key: feed.last_id for key, feed in self._feeds.items()}
            try:
                answer = await self._reader.xread(streams, count=500, block=BLOCK_MS)
                failures = 0
            except RedisError as error:
                failures += 1
                log.warning("event reader lost redis; retrying", error=str(error))
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                continue
            for key, entries in answer or []:
                feed = self._feeds.get(_text(key))
                if feed is None:
                    continue
                for entry_id, fields in entries:
                    event = _to_event(entry_id, fields)
                    feed.last_id = event.id
                    for subscriber in list(feed.subscribers):
                        subscriber.push(event)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _to_event(entry_id: bytes | str, fields: dict[Any, Any]) -> TaskEvent:
    values = {_text(k): _text(v) for k, v in fields.items()}
    return TaskEvent(id=_text(entry_id), event=values["event"], data=values["data"])
