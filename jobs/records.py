"""Video and task records in Redis: the service's memory and the task history.

Keys (``P`` is :attr:`Settings.key_prefix`):

    P:video:next_id        counter for video ids
    P:video:<id>           JSON of a :class:`VideoRecord`
    P:videos               sorted set of video ids
    P:task:<task_id>       hash of a :class:`TaskRecord`, one JSON value per field
    P:tasks                sorted set of task ids by creation time (ms)
    P:video:<id>:tasks     the same, per video
    P:stats:tasks          task counts by operation and state (see jobs.task_counts)

Records have no TTL: they outlive arq's own job results and are the history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import asdict, replace
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from jobs.errors import NotFound
from jobs.model import (
    TASK_FIELDS,
    JsonDict,
    Operation,
    TaskRecord,
    TaskState,
    VideoRecord,
)
from jobs.task_counts import count_state_change, read_task_counts


class Records:
    """Reads and writes the records; one instance per process, sharing its Redis pool."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _video_key(self, video_id: int) -> str:
        return f"{self.prefix}:video:{video_id}"

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    async def next_video_id(self) -> int:
        """Reserve a new video id."""
        return int(await self.redis.incr(f"{self.prefix}:video:next_id"))

    async def save_video(self, video: VideoRecord) -> None:
        """Store a video record (create or replace)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._video_key(video.id), json.dumps(asdict(video)))
            pipe.zadd(f"{self.prefix}:videos", {str(video.id): video.id})
            await pipe.execute()

    async def get_video(self, video_id: int) -> VideoRecord:
        """The video with this id, or :class:`NotFound`."""
        raw = await self.redis.get(self._video_key(video_id))
        if raw is None:
            raise NotFound(f"There is no video with id {video_id}.", code="video_not_found")
        return VideoRecord(**json.loads(raw))

    async def list_videos(self) -> list[VideoRecord]:
        """All videos, newest first."""
        ids = await self.redis.zrevrange(f"{self.prefix}:videos", 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([self._video_key(int(i)) for i in ids])
        return [VideoRecord(**json.loads(raw)) for raw in raws if raw is not None]

    def revoked_session_key(self, session_id: str) -> str:
        """Marks a signed-out page session until its cookie would have expired."""
        return f"{self.prefix}:session:{session_id}:revoked"

    async def revoke_session(self, session_id: str, seconds: int) -> None:
        """Mark the page session ``session_id`` signed out for ``seconds``."""
        await self.redis.set(self.revoked_session_key(session_id), b"1", ex=seconds)

    async def session_revoked(self, session_id: str) -> bool:
        """Whether the page session ``session_id`` was signed out."""
        return bool(await self.redis.exists(self.revoked_session_key(session_id)))

    def events_key(self, task_id: str) -> str:
        """The task's event log: a capped Redis Stream whose entry ids are the SSE event ids."""
        return f"{self.prefix}:task:{task_id}:events"

    def tasks_index_key(self, video_id: int | None = None) -> str:
        """Sorted set of task ids by creation time: all tasks, or one video's."""
        if video_id is None:
            return f"{self.prefix}:tasks"
        return f"{self.prefix}:video:{video_id}:tasks"

    async def create_task(self, task: TaskRecord, *, created: float | None = None) -> None:
        """Store a new task record, index it, and log its first event.

        ``created`` (epoch seconds, default now) orders the history.
        """
        score = (time.time() if created is None else created) * 1000
        async with self.redis.pipeline(transaction=True) as pipe:
            self._count(pipe, task.task_id, task.operation, task.state)
            pipe.hset(self._task_key(task.task_id), mapping=_encode(asdict(task)))
            pipe.zadd(self.tasks_index_key(), {task.task_id: score})
            pipe.zadd(self.tasks_index_key(task.video_id), {task.task_id: score})
            self._log_event(pipe, task)
            await pipe.execute()

    async def get_task(self, task_id: str) -> TaskRecord:
        """The task with this id, or :class:`NotFound`."""
        # redis-py types hash commands as sync-or-async; this client is async.
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self._task_key(task_id)))
        if not raw:
            raise NotFound(f"There is no task with id {task_id!r}.", code="task_not_found")
        return _decode_task(raw)

    async def update_task(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        """Apply ``changes`` to ``task``, store them and log the new state as an event.

        The writer (the job running the task) holds the current record, so the event carries the
        full state without reading it back. Returns the updated record.
        """
        unknown = set(changes) - TASK_FIELDS
        if unknown:
            raise ValueError(f"not task fields: {sorted(unknown)}")
        updated = replace(task, **changes)
        async with self.redis.pipeline(transaction=True) as pipe:
            if "state" in changes:
                self._count(pipe, task.task_id, task.operation, updated.state)
            pipe.hset(self._task_key(task.task_id), mapping=_encode(changes))
            self._log_event(pipe, updated)
            if updated.state.finished:
                # Late and resuming clients have an hour; then the record alone tells the end.
                pipe.expire(self.events_key(task.task_id), FINISHED_EVENTS_TTL)
            await pipe.execute()
        return updated

    async def transition(
        self, task_id: str, allowed: frozenset[TaskState], **changes: Any
    ) -> TaskRecord | None:
        """Apply ``changes`` only if the task's state is one of ``allowed``, atomically
        (WATCH/MULTI), and log the event. Returns the new record, or ``None`` if the state was
        not allowed. This is how two parties (a worker starting a task, a client cancelling it)
        can never both win."""
        key = self._task_key(task_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await cast(Awaitable[dict[bytes, bytes]], pipe.hgetall(key))
                    if not raw:
                        raise NotFound(
                            f"There is no task with id {task_id!r}.", code="task_not_found"
                        )
                    current = _decode_task(raw)
                    if current.state not in allowed:
                        return None  # leaving the block resets the pipeline and unwatches
                    updated = replace(current, **changes)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if "state" in changes:
                        self._count(pipe, task_id, current.operation, updated.state)
                    pipe.hset(key, mapping=_encode(changes))
                    self._log_event(pipe, updated)
                    if updated.state.finished:
                        pipe.expire(self.events_key(task_id), FINISHED_EVENTS_TTL)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    def cancel_key(self, task_id: str) -> str:
        """Set when a client asked to cancel the task; running jobs poll it."""
        return f"{self.prefix}:task:{task_id}:cancel"

    async def request_cancel(self, task_id: str) -> None:
        """Raise the task's cancel flag (kept a day: long enough for any queue)."""
        await self.redis.set(self.cancel_key(task_id), b"1", ex=86400)

    async def cancel_requested(self, task_id: str) -> bool:
        """Whether a client asked to cancel the task."""
        return bool(await self.redis.exists(self.cancel_key(task_id)))

    def running_key(self) -> str:
        """Sorted set of running task ids by their last heartbeat (epoch seconds)."""
        return f"{self.prefix}:running"

    async def heartbeat(self, task_id: str) -> None:
        """Record that the task's worker is alive and working on it."""
        await self.redis.zadd(self.running_key(), {task_id: time.time()})

    async def not_running(self, task_id: str) -> None:
        """The task's run ended (or was handed back): no more heartbeats are due."""
        await self.redis.zrem(self.running_key(), task_id)

    async def stale_running(self, older_than: float) -> list[str]:
        """Tasks whose last heartbeat is older than ``older_than`` (epoch seconds)."""
        rows = await self.redis.zrangebyscore(self.running_key(), "-inf", older_than)
        return [row.decode() for row in rows]

    def _count(
        self, pipe: Pipeline, task_id: str, operation: Operation, state: TaskState | None
    ) -> None:
        """Queue the count of a state change (before the write that makes it)."""
        stored = None if state is None else json.dumps(TaskState(state).value)
        count_state_change(pipe, self.prefix, self._task_key(task_id), operation.value, stored)

    async def task_counts(self) -> dict[tuple[str, str], int]:
        """How many tasks are in each ``(operation, state)``, from counters (no scan)."""
        return await read_task_counts(
            self.redis, self.prefix, self.tasks_index_key(), self._task_key("")
        )

    def _log_event(self, pipe: Pipeline, task: TaskRecord) -> None:
        event = EVENT_END if task.state.finished else EVENT_PROGRESS
        pipe.xadd(
            self.events_key(task.task_id),
            {"event": event, "data": json.dumps(task.to_api())},
            maxlen=LIVE_EVENTS_KEPT,
            approximate=True,
        )

    async def list_tasks(
        self,
        *,
        video_id: int | None = None,
        state: TaskState | None = None,
        operation: Operation | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[TaskRecord], str | None]:
        """Task records newest first, optionally filtered, ``limit`` at a time.

        Returns the page and the cursor of the next one (``None`` at the end). A cursor is the
        position of the last record looked at, so pages neither skip nor repeat records while
        new tasks are added. Raises ValueError for a malformed cursor.
        """
        key = self.tasks_index_key(video_id)
        after = _parse_cursor(cursor) if cursor else None
        found: list[TaskRecord] = []
        last: tuple[float, str] | None = after
        for _ in range(_MAX_SCAN_BATCHES):
            batch = max(limit, 50)
            rows = await self.redis.zrevrangebyscore(
                key,
                repr(last[0]) if last else "+inf",
                "-inf",
                start=0,
                num=batch + 8,
                withscores=True,
            )
            fetched = len(rows)
            members = [(m.decode(), float(score)) for m, score in rows]
            if last is not None:
                # Members sharing the cursor's score come in reverse lexical order: those not
                # below the cursor's member were on earlier pages.
                members = [(m, sc) for m, sc in members if not (sc == last[0] and m >= last[1])]
            if not members:
                return found, None
            tasks = await self._get_tasks([m for m, _ in members])
            for (member, score), task in zip(members, tasks, strict=True):
                last = (score, member)
                if task is None:
                    continue
                if (state is None or task.state is state) and (
                    operation is None or task.operation is operation
                ):
                    found.append(task)
                    if len(found) == limit:
                        return found, _format_cursor(last)
            if fetched < batch + 8:
                return found, None
        return found, _format_cursor(last) if last else None

    async def _get_tasks(self, task_ids: list[str]) -> list[TaskRecord | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self._task_key(task_id))
            raws: list[dict[bytes, bytes]] = await pipe.execute()
        return [_decode_task(raw) if raw else None for raw in raws]

    async def delete_task(self, task: TaskRecord) -> None:
        """Remove a task's record, event log and index entries (its files are the caller's)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self._count(pipe, task.task_id, task.operation, None)
            pipe.delete(self._task_key(task.task_id), self.events_key(task.task_id))
            pipe.zrem(self.tasks_index_key(), task.task_id)
            pipe.zrem(self.tasks_index_key(task.video_id), task.task_id)
            await pipe.execute()

    async def tasks_created_before(self, epoch_seconds: float, limit: int = 500) -> list[str]:
        """Ids of the oldest tasks created before ``epoch_seconds``."""
        rows = await self.redis.zrangebyscore(
            self.tasks_index_key(), "-inf", f"({epoch_seconds * 1000!r}", start=0, num=limit
        )
        return [row.decode() for row in rows]


#: Entries kept in a running task's event log: the window in which a client can resume.
LIVE_EVENTS_KEPT = 1000
#: Seconds an ended task's event log is kept.
FINISHED_EVENTS_TTL = 3600
EVENT_PROGRESS = "progress"
EVENT_END = "end"
_MAX_SCAN_BATCHES = 20


def _decode_task(raw: dict[bytes, bytes]) -> TaskRecord:
    data = {k.decode(): json.loads(v) for k, v in raw.items()}
    task = TaskRecord(**{k: v for k, v in data.items() if k in TASK_FIELDS})
    return replace(task, state=TaskState(task.state), operation=Operation(task.operation))


def _format_cursor(position: tuple[float, str]) -> str:
    return f"{position[0]!r}:{position[1]}"


def _parse_cursor(cursor: str) -> tuple[float, str]:
    score, sep, member = cursor.partition(":")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not sep or not member or value != value:  # NaN check
        raise ValueError("cursor")
    return value, member


def _encode(values: JsonDict) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in values.items()}
