"""Putting a task's run on the arq queue."""

from __future__ import annotations

from arq.connections import ArqRedis

from jobs.model import Operation, TaskRecord

#: The arq job name of each operation (the functions are in jobs.operations).
JOB_NAMES = {
    Operation.MASK: "apply_mask",
    Operation.REMOVE_FRAMES: "remove_frames",
    Operation.ANALYZE: "analyze",
    Operation.REPROCESS: "reprocess",
}


async def enqueue_attempt(
    redis: ArqRedis, queue_name: str, task: TaskRecord, *, delay: float | None = None
) -> None:
    """Queue the run of ``task.attempt``. Each attempt is its own arq job (ids are never
    reused: arq keeps a lost job's in-progress marker until its timeout)."""
    job_id = task.task_id if task.attempt == 1 else f"{task.task_id}-a{task.attempt}"
    await redis.enqueue_job(
        JOB_NAMES[task.operation],
        task.task_id,
        task.attempt,
        _job_id=job_id,
        _queue_name=queue_name,
        _defer_by=delay,
    )
