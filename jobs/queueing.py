"""Putting a task's run on the arq queue."""

from __future__ import annotations

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from jobs.model import RUNNING, JsonDict, Operation, TaskRecord
from jobs.task_store import TaskStore

#: The arq job name of each operation (the functions are built in jobs.worker).
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
    job_id = attempt_job_id(task.task_id, task.attempt)
    await redis.enqueue_job(
        JOB_NAMES[task.operation],
        task.task_id,
        task.attempt,
        _job_id=job_id,
        _queue_name=queue_name,
        _defer_by=delay,
    )


def attempt_job_id(task_id: str, attempt: int) -> str:
    """The arq job id of a task's attempt."""
    return task_id if attempt == 1 else f"{task_id}-a{attempt}"


async def forget_lost_attempt(redis: ArqRedis, queue_name: str, task_id: str, attempt: int) -> None:
    """Take a lost attempt's arq job (its worker died while running it) off the queue, with its
    in-progress marker. arq would keep both until its own time limit, which is days long (it sits
    above the longest job's: jobs.worker), and count the job as queued meanwhile."""
    job_id = attempt_job_id(task_id, attempt)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(queue_name, job_id)
        pipe.delete(
            in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id
        )
        await pipe.execute()


async def requeue(
    records: TaskStore,
    redis: ArqRedis,
    queue_name: str,
    task_id: str,
    retry: JsonDict,
    *,
    delay: float | None = None,
) -> TaskRecord | None:
    """Make a running task RETRY as its next attempt (``retry``: the changes of
    :func:`jobs.model.next_attempt`) and queue that attempt, after ``delay`` seconds if given.
    ``None`` if the task no longer runs (nothing is queued then)."""
    retried = await records.transition(task_id, RUNNING, **retry)
    if retried is not None:
        await enqueue_attempt(redis, queue_name, retried, delay=delay)
    return retried
