"""Tasks and videos in Redis: the service's memory and the task history, shared by every
process (the keys are :mod:`jobs.keys`'s).

A task is a hash with one JSON value per field, indexed by creation time (all tasks, and per
video); each write of it also logs an event in its event log (a capped stream, kept an hour once
the task has ended) and moves the task counts (:mod:`jobs.task_counts`) in the same MULTI.
Records have no TTL: they outlive arq's own job results and are the history. The write that
ends a task also queues its webhook deliveries (:mod:`jobs.webhooks`) in that MULTI.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from jobs.errors import NotFound
from jobs.event_hub import EventHub
from jobs.keys import Keys
from jobs.model import JsonDict, Operation, TaskRecord, TaskState, VideoRecord
from jobs.task_counts import count_state_change, read_task_counts
from jobs.task_pages import TaskPage, TaskQuery, format_cursor
from jobs.task_store import TaskEvent, TaskStore, changed, event_entry
from jobs.webhooks import queue_deliveries, targets

#: Entries kept in a running task's event log: the window in which a client can resume.
LIVE_EVENTS_KEPT = 1000
#: Seconds an ended task's event log is kept.
FINISHED_EVENTS_TTL = 3600
#: Seconds a cancel flag is kept: long enough for any queue.
CANCEL_TTL = 86400
_MAX_SCAN_BATCHES = 20
#: Compare-and-set: ``KEYS[1]`` becomes ``ARGV[2]`` (deleted when empty), with ``ARGV[3]`` s
#: to live, only if it still holds ``ARGV[1]``.
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""

#: ``{jobs in the queue KEYS[1] but chunk jobs (ids with ":chunk:"), members of KEYS[2]}``.
_QUEUE_COUNTS = """
local jobs = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not string.find(id, ':chunk:', 1, true) then jobs = jobs + 1 end
end
return {jobs, redis.call('ZCARD', KEYS[2])}
"""


class RedisTaskStore:
    """Reads and writes the records; one instance per process, sharing its Redis pool.

    ``events`` is the process's reader of event logs, which :meth:`follow` needs: the server's
    (workers follow no events). ``webhook_url`` (``VIDCORRECT_WEBHOOK_URL``) is posted each
    task's end, as is the task's own ``callback_url`` (:mod:`jobs.webhooks`).
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        events: EventHub | None = None,
        *,
        webhook_url: str | None = None,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self._events = events
        self._webhook_url = webhook_url
        self._swap_script = redis.register_script(_SWAP)
        self._queue_counts_script = redis.register_script(_QUEUE_COUNTS)

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._redis.ping()

    async def next_video_id(self) -> int:
        """Reserve a new video id."""
        return int(await self._redis.incr(self.keys.video_next_id))

    async def save_video(self, video: VideoRecord) -> None:
        """Store a video record (create or replace)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.video(video.id), json.dumps(asdict(video)))
            pipe.zadd(self.keys.videos, {str(video.id): video.id})
            await pipe.execute()

    async def get_video(self, video_id: int) -> VideoRecord:
        raw = await self._redis.get(self.keys.video(video_id))
        if raw is None:
            raise NotFound(f"There is no video with id {video_id}.", code="video_not_found")
        return VideoRecord(**json.loads(raw))

    async def delete_video(self, video_id: int) -> None:
        """Remove a video's record (its tasks stay, and keep its id: the history)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.video(video_id))
            pipe.zrem(self.keys.videos, str(video_id))
            await pipe.execute()

    async def list_videos(self) -> list[VideoRecord]:
        """All videos, newest first."""
        ids = await self._redis.zrevrange(self.keys.videos, 0, -1)
        if not ids:
            return []
        raws = await self._redis.mget([self.keys.video(int(i)) for i in ids])
        return [VideoRecord(**json.loads(raw)) for raw in raws if raw is not None]

    async def create_task(self, task: TaskRecord, *, created: float | None = None) -> None:
        score = (time.time() if created is None else created) * 1000
        async with self._redis.pipeline(transaction=True) as pipe:
            self._count(pipe, task.task_id, task.operation, task.state)
            pipe.hset(self.keys.task(task.task_id), mapping=_encode(asdict(task)))
            pipe.zadd(self.keys.tasks(), {task.task_id: score})
            pipe.zadd(self.keys.tasks(task.video_id), {task.task_id: score})
            self._log_event(pipe, task)
            await pipe.execute()

    async def get_task(self, task_id: str) -> TaskRecord:
        # redis-py types hash commands as sync-or-async; this client is async.
        raw = await cast(
            Awaitable[dict[bytes, bytes]], self._redis.hgetall(self.keys.task(task_id))
        )
        if not raw:
            raise NotFound(f"There is no task with id {task_id!r}.", code="task_not_found")
        return _decode_task(raw)

    async def update_task(self, task: TaskRecord, **changes: Any) -> TaskRecord:
        updated = changed(task, changes)
        async with self._redis.pipeline(transaction=True) as pipe:
            self._write(pipe, task, updated, changes)
            await pipe.execute()
        return updated

    async def transition(
        self, task_id: str, allowed: frozenset[TaskState], **changes: Any
    ) -> TaskRecord | None:
        """See :meth:`TaskStore.transition`: WATCH the task, check, then MULTI."""
        key = self.keys.task(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
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
                    updated = changed(current, changes)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._write(pipe, current, updated, changes)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    def _write(
        self, pipe: Pipeline, current: TaskRecord, updated: TaskRecord, changes: JsonDict
    ) -> None:
        """Queue the write of ``changes`` (``current`` becoming ``updated``) and its event."""
        if "state" in changes:
            self._count(pipe, current.task_id, current.operation, updated.state)
        pipe.hset(self.keys.task(current.task_id), mapping=_encode(changes))
        self._log_event(pipe, updated)
        if updated.state.finished:
            # Late and resuming clients have an hour; then the record alone tells the end.
            pipe.expire(self.keys.task_events(current.task_id), FINISHED_EVENTS_TTL)
            if not current.state.finished and (urls := targets(updated, self._webhook_url)):
                queue_deliveries(pipe, self.keys, updated, urls)

    async def request_cancel(self, task_id: str) -> None:
        await self._redis.set(self.keys.cancel(task_id), b"1", ex=CANCEL_TTL)

    async def cancel_requested(self, task_id: str) -> bool:
        return bool(await self._redis.exists(self.keys.cancel(task_id)))

    async def heartbeat(self, task_id: str) -> None:
        await self._redis.zadd(self.keys.running, {task_id: time.time()})

    async def not_running(self, task_id: str) -> None:
        await self._redis.zrem(self.keys.running, task_id)

    async def stale_running(self, older_than: float) -> list[str]:
        """Tasks whose last heartbeat is older than ``older_than`` (epoch seconds)."""
        rows = await self._redis.zrangebyscore(self.keys.running, "-inf", older_than)
        return [row.decode() for row in rows]

    async def claim_recovery(self, task_id: str, seconds: int) -> bool:
        """Take the lock of recovering the task for ``seconds``; False if another worker has."""
        return bool(await self._redis.set(self.keys.recovering(task_id), b"1", nx=True, ex=seconds))

    async def claim(self, key: str, task_id: str, seconds: int) -> bool:
        """Make the claim ``key`` (:meth:`Keys.idempotency`, :meth:`Keys.same_request`) name
        ``task_id`` for ``seconds``, unless it names a task already (then False)."""
        return bool(await self._redis.set(key, task_id, nx=True, ex=seconds))

    async def claim_holder(self, key: str) -> str | None:
        """The task the claim ``key`` names, if any."""
        holder = await self._redis.get(key)
        return None if holder is None else holder.decode()

    async def swap_claim(self, key: str, old: str, new: str | None, seconds: int) -> bool:
        """Make the claim ``key`` name ``new`` for ``seconds`` (``None``: drop it), if it still
        names ``old``."""
        return bool(await self._swap_script(keys=[key], args=[old, new or "", seconds]))

    async def queue_counts(self) -> tuple[int, int]:
        """Jobs in the arq queue (running ones included) and tasks running now; the chunk jobs
        of long tasks (jobs.chunked) are not tasks and are left out."""
        queued, running = await self._queue_counts_script(keys=[self.keys.queue, self.keys.running])
        return int(queued), int(running)

    def _count(
        self, pipe: Pipeline, task_id: str, operation: Operation, state: TaskState | None
    ) -> None:
        """Queue the count of a state change (before the write that makes it)."""
        stored = None if state is None else json.dumps(TaskState(state).value)
        count_state_change(pipe, self.keys, task_id, operation.value, stored)

    async def task_counts(self) -> dict[tuple[str, str], int]:
        """From counters (no scan)."""
        return await read_task_counts(self._redis, self.keys)

    def _log_event(self, pipe: Pipeline, task: TaskRecord) -> None:
        event, data = event_entry(task)
        pipe.xadd(
            self.keys.task_events(task.task_id),
            {"event": event, "data": data},
            maxlen=LIVE_EVENTS_KEPT,
            approximate=True,
        )

    def follow(
        self, task_id: str, last_event_id: str | None
    ) -> AbstractAsyncContextManager[AsyncIterator[TaskEvent]]:
        if self._events is None:
            raise RuntimeError("this process reads no event logs (it was given no EventHub)")
        return self._events.follow(task_id, last_event_id)

    async def event_log_expired(self, task: TaskRecord) -> bool:
        return task.state.finished and not await self._redis.exists(
            self.keys.task_events(task.task_id)
        )

    def close_streams(self) -> None:
        if self._events is not None:
            self._events.close_streams()

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """A cursor is the position (score, member) of the last record looked at."""
        key = self.keys.tasks(query.video_id)
        limit = query.limit
        after = query.after()
        found: list[TaskRecord] = []
        last: tuple[float, str] | None = after
        for _ in range(_MAX_SCAN_BATCHES):
            batch = max(limit, 50)
            rows = await self._redis.zrevrangebyscore(
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
                if query.matches(task):
                    found.append(task)
                    if len(found) == limit:
                        return found, format_cursor(last)
            if fetched < batch + 8:
                return found, None
        return found, format_cursor(last) if last else None

    async def _get_tasks(self, task_ids: list[str]) -> list[TaskRecord | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self.keys.task(task_id))
            raws: list[dict[bytes, bytes]] = await pipe.execute()
        return [_decode_task(raw) if raw else None for raw in raws]

    async def delete_task(self, task: TaskRecord) -> None:
        """Remove a task's record, event log and index entries (its files are the caller's)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            self._count(pipe, task.task_id, task.operation, None)
            pipe.delete(self.keys.task(task.task_id), self.keys.task_events(task.task_id))
            pipe.zrem(self.keys.tasks(), task.task_id)
            pipe.zrem(self.keys.tasks(task.video_id), task.task_id)
            await pipe.execute()

    async def tasks_created_before(self, epoch_seconds: float, limit: int = 500) -> list[str]:
        """Ids of the oldest tasks created before ``epoch_seconds``."""
        rows = await self._redis.zrangebyscore(
            self.keys.tasks(), "-inf", f"({epoch_seconds * 1000!r}", start=0, num=limit
        )
        return [row.decode() for row in rows]


if TYPE_CHECKING:
    _: type[TaskStore] = RedisTaskStore


def _decode_task(raw: dict[bytes, bytes]) -> TaskRecord:
    return TaskRecord.from_fields({k.decode(): json.loads(v) for k, v in raw.items()})


def _encode(values: JsonDict) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in values.items()}
