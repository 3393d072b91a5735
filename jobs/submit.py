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
import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from jobs.errors import NotFound, QueueFull, Unprocessable
from jobs.model import JsonDict, Operation, TaskRecord
from jobs.queueing import enqueue_attempt
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings

#: How long duplicate and idempotency keys are remembered (seconds).
KEYS_TTL = 86400
#: Suggested wait before submitting again when the queue is full (seconds).
RETRY_AFTER = 10
#: Seconds a submission waits for the record of the task another one has just claimed a key for
#: (written right after the claim); a claim without a record after that is stale and taken over.
CLAIM_WAIT = 5.0
CLAIM_POLL = 0.02


@dataclass(frozen=True)
class Submission:
    """The task a submission refers to, and whether it already existed."""

    task: TaskRecord
    duplicate: bool


class Submitter:
    """Submits tasks for one process. The queue-depth check and a reserved place are one short
    critical section, so concurrent submissions never overshoot ``max_queued`` and never wait
    on each other's Redis writes."""

    def __init__(self, redis: ArqRedis, records: RedisTaskStore, settings: Settings) -> None:
        #: The arq pool the jobs are queued with.
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
        submitted_by: str | None = None,
    ) -> Submission:
        """The existing task for an identical or repeated submission, else a new queued one.

        The keys are claimed atomically (``SET NX``) for the new task's id before its record is
        written, so of concurrent identical submissions (or ones with the same key) exactly one
        makes a task and the others answer with it (or 422, for a key used for another request).
        ``submitted_by`` (a user name) is recorded in a new task; a duplicate keeps its own.
        """
        keys = self.records.keys
        fingerprint = _fingerprint(operation, video_id, params)
        idem_key = keys.idempotency(_digest(idempotency_key)) if idempotency_key else None
        same_key = keys.same_request(fingerprint)
        task = TaskRecord(
            task_id=uuid.uuid4().hex,
            operation=operation,
            video_id=video_id,
            params=params,
            submitted_by=submitted_by,
        )
        claimed: list[str] = []
        created = False
        try:
            if idem_key:
                if known := await self._claim(idem_key, task.task_id, active_only=False):
                    if _fingerprint(known.operation, known.video_id, known.params) != fingerprint:
                        raise Unprocessable(
                            "This Idempotency-Key was already used for another request (another "
                            f"operation, video or parameters) in the last {KEYS_TTL // 3600} "
                            "hours; send a new key with each new request.",
                            code="idempotency_key_reused",
                        )
                    return Submission(known, duplicate=True)
                claimed.append(idem_key)
            if known := await self._claim(same_key, task.task_id, active_only=True):
                if idem_key:  # the key now stands for the task it was answered with
                    await self._swap(idem_key, task.task_id, known.task_id)
                    claimed.remove(idem_key)
                return Submission(known, duplicate=True)
            claimed.append(same_key)
            await self._queue(task)
            created = True
        finally:
            if not created:  # give up the claims, so the next submission can make the task
                for key in claimed:
                    with contextlib.suppress(RedisError):
                        await self._swap(key, task.task_id, None)
        return Submission(task, duplicate=False)

    async def _queue(self, task: TaskRecord) -> None:
        """Record ``task`` and enqueue its job, or :class:`QueueFull`."""
        async with self._lock:  # held for one round trip: the count and a place in it
            queued, running = await self.records.queue_counts()
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

    async def _claim(self, key: str, task_id: str, *, active_only: bool) -> TaskRecord | None:
        """Claim ``key`` for ``task_id`` (``None``), or the task it already names. A claim whose
        record has not appeared within :data:`CLAIM_WAIT` (its submitter died) and, with
        ``active_only``, one whose task has ended are taken over."""
        loop = asyncio.get_running_loop()
        holder, deadline = None, 0.0
        while True:
            if await self.records.claim(key, task_id, KEYS_TTL):
                return None
            current_id = await self.records.claim_holder(key)
            if current_id is None:  # released or expired meanwhile: claim it again
                continue
            if current_id != holder:
                holder, deadline = current_id, loop.time() + CLAIM_WAIT
            try:
                task = await self.records.get_task(current_id)
            except NotFound:
                if loop.time() < deadline:  # claimed a moment ago: its record follows
                    await asyncio.sleep(CLAIM_POLL)
                    continue
            else:
                if not (active_only and task.state.finished):
                    return task
            if await self._swap(key, current_id, task_id):
                return None

    async def _swap(self, key: str, old: str, new: str | None) -> bool:
        """Set ``key`` to ``new`` (delete it: ``None``) if it still holds ``old``."""
        return await self.records.swap_claim(key, old, new, KEYS_TTL)


def _fingerprint(operation: Operation, video_id: int, params: JsonDict) -> str:
    """What makes two submissions the same request: operation, video and parameters."""
    return _digest(json.dumps([operation.value, video_id, params], sort_keys=True))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
