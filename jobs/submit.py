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
    """Create a PENDING task record and enqueue its job under the same, unique id."""
    task = TaskRecord(
        task_id=uuid.uuid4().hex, operation=operation, video_id=video_id, params=params
    )
    await records.create_task(task)
    await redis.enqueue_job(
        OPERATION_JOBS[operation].name,
        task.task_id,
        _job_id=task.task_id,
        _queue_name=queue_name,
    )
    return task
