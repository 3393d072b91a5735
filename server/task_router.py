"""Which store answers for a task, and the degraded mode's fallbacks: decided here, once.

Tasks live in Redis (:class:`RedisTaskStore`), except those this process runs itself while
Redis is away (:class:`LocalJobs`: ids that start with ``local-``, in its memory store). The
request handlers ask the router for a task's store and never branch on where a task lives or
whether Redis answers.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from jobs.model import JsonDict, Operation, VideoRecord
from jobs.redis_store import RedisTaskStore
from jobs.submit import Submission, Submitter
from jobs.task_store import TaskStore
from server.local import LocalJobs


class TaskRouter:
    """The tasks of this server process, wherever they live."""

    def __init__(self, records: RedisTaskStore, submitter: Submitter, local: LocalJobs) -> None:
        self._records = records
        self._submitter = submitter
        self._local = local

    def store(self, task_id: str) -> TaskStore:
        """Where the task lives: Redis, or this process's memory for a degraded-mode task."""
        return self._local.store if self._local.owns(task_id) else self._records

    @property
    def stores(self) -> tuple[TaskStore, ...]:
        """Every store of this process's tasks: Redis's, then this process's memory."""
        return (self._records, self._local.store)

    async def submit(
        self,
        operation: Operation,
        video_id: int,
        params: JsonDict,
        idempotency_key: str | None,
        submitted_by: str | None = None,
    ) -> Submission:
        """Queue the task (see :meth:`Submitter.submit`); while Redis cannot be reached, run it
        in this process instead (a ``local-`` task, never a duplicate)."""
        try:
            return await self._submitter.submit(
                operation, video_id, params, idempotency_key, submitted_by
            )
        except RedisError:
            local = await self._local.submit(operation, video_id, params, submitted_by)
            return Submission(local, False)

    async def get_video(self, video_id: int) -> VideoRecord:
        """The video to submit a task for: from Redis or, while it cannot be reached, from the
        sidecar file its upload wrote (as the degraded mode's store reads it)."""
        try:
            return await self._records.get_video(video_id)
        except RedisError:
            return await self._local.store.get_video(video_id)

    def close_streams(self) -> None:
        """End every event stream of this process (server shutdown)."""
        self._records.close_streams()
        self._local.store.close_streams()
