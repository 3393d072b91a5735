"""Submitting tasks: duplicates, idempotency, backpressure, then record and enqueue.

A task is recorded before its job is queued, so a task id always has a record. Identical
submissions (same operation, video and parameters) while the first is still queued or running
return that task; so does a repeated ``Idempotency-Key`` with the same request, whatever the
task's state, while a key used for another request (operation, video or parameters) is refused
with :class:`Unprocessable` (422). Both are remembered for :data:`KEYS_TTL`. At most
``max_queued`` tasks wait; a submission past that is refused with :class:`QueueFull` (429) and
nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass

from arq.connections import ArqRedis

from jobs.errors import NotFound, QueueFull, Unprocessable
from jobs.queueing import enqueue_attempt
from jobs.records import JsonDict, Operation, Records, TaskRecord
from jobs.settings import Settings

#: How long duplicate and idempotency keys are remembered (seconds).
KEYS_TTL = 86400
#: Suggested wait before submitting again when the queue is full (seconds).
RETRY_AFTER = 10


@dataclass(frozen=True)
class Submission:
    """The task a submission refers to, and whether it already existed."""

    task: TaskRecord
    duplicate: bool


class Submitter:
    """Submits tasks for one process. The queue-depth check and a reserved place are one short
    critical section, so concurrent submissions never overshoot ``max_queued`` and never wait
    on each other's Redis writes."""

    def __init__(self, redis: ArqRedis, records: Records, settings: Settings) -> None:
        self.redis = redis
        self.records = records
        self.settings = settings
        self._lock = asyncio.Lock()
        #: Submissions past the depth check whose job is not in the queue yet.
        self._reserved = 0

    async def submit(
        self,
        operation: Operation,
        video_id: int,
        params: JsonDict,
        idempotency_key: str | None = None,
    ) -> Submission:
        """The existing task for an identical or repeated submission, else a new queued one."""
        prefix = self.records.prefix
        fingerprint = _fingerprint(operation, video_id, params)
        idem_key = f"{prefix}:idem:{_digest(idempotency_key)}" if idempotency_key else None
        if idem_key and (known := await self._known(idem_key, active_only=False)):
            if _fingerprint(known.operation, known.video_id, known.params) != fingerprint:
                raise Unprocessable(
                    "This Idempotency-Key was already used for another request (another "
                    f"operation, video or parameters) in the last {KEYS_TTL // 3600} hours; "
                    "send a new key with each new request.",
                    code="idempotency_key_reused",
                )
            return Submission(known, duplicate=True)
        same_key = f"{prefix}:same:{fingerprint}"
        if known := await self._known(same_key, active_only=True):
            return Submission(known, duplicate=True)
        task = TaskRecord(
            task_id=uuid.uuid4().hex, operation=operation, video_id=video_id, params=params
        )
        async with self._lock:  # held for one round trip: the count and a place in it
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(self.settings.queue_name)
                pipe.zcard(self.records.running_key())
                queued, running = await pipe.execute()
            waiting = queued - running + self._reserved
            if waiting >= self.settings.max_queued:
                raise QueueFull(
                    f"{waiting} tasks are waiting, the most this service queues "
                    f"(VIDCORRECT_MAX_QUEUED={self.settings.max_queued}); submit again in "
                    f"{RETRY_AFTER} s.",
                    retry_after=RETRY_AFTER,
                )
            self._reserved += 1
        try:
            await self.records.create_task(task)
            await enqueue_attempt(self.redis, self.settings.queue_name, task)
        finally:
            # No await between the enqueue and this: a task is never counted twice.
            self._reserved -= 1
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(same_key, task.task_id, ex=KEYS_TTL)
            if idem_key:
                pipe.set(idem_key, task.task_id, ex=KEYS_TTL)
            await pipe.execute()
        return Submission(task, duplicate=False)

    async def _known(self, key: str, *, active_only: bool) -> TaskRecord | None:
        task_id = await self.redis.get(key)
        if task_id is None:
            return None
        try:
            task = await self.records.get_task(task_id.decode())
        except NotFound:
            return None
        if active_only and task.state.finished:
            return None
        return task


def _fingerprint(operation: Operation, video_id: int, params: JsonDict) -> str:
    """What makes two submissions the same request: operation, video and parameters."""
    return _digest(json.dumps([operation.value, video_id, params], sort_keys=True))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
