"""Submitting tasks: record first, then enqueue, so a task id always has a record."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis

from jobs.operations import OPERATION_JOBS
from jobs.records import JsonDict, Operation, Records, TaskRecord


async def submit_task(
    redis: ArqRedis,
    records: Records,
    queue_name: str,
    operation: Operation,
    video_id: int,
    params: JsonDict,
) -> TaskRecord:
    """Create a PENDING task record and enqueue its first attempt."""
    task = TaskRecord(
        task_id=uuid.uuid4().hex, operation=operation, video_id=video_id, params=params
    )
    await records.create_task(task)
    await enqueue_attempt(redis, queue_name, task)
    return task


async def enqueue_attempt(
    redis: ArqRedis, queue_name: str, task: TaskRecord, *, delay: float | None = None
) -> None:
    """Queue the run of ``task.attempt``. Each attempt is its own arq job (ids are never
    reused: arq keeps a lost job's in-progress marker until its timeout)."""
    job_id = task.task_id if task.attempt == 1 else f"{task.task_id}-a{task.attempt}"
    await redis.enqueue_job(
        OPERATION_JOBS[task.operation].name,
        task.task_id,
        task.attempt,
        _job_id=job_id,
        _queue_name=queue_name,
        _defer_by=delay,
    )
