"""The task state machine of a job's run: STARTED, then SUCCESS, FAILURE, REVOKED, RETRY (a
transient error) or back to PENDING (a worker shutdown), the same for every operation.

An operation's body (:data:`jobs.job_run.OperationBody`) does the work on a
:class:`jobs.job_run.JobRun`; :func:`run_task` starts it, supervises it, removes its temp files
unless it succeeded, and records how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from jobs.errors import NotFound
from jobs.failures import describe_failure, transient_reason
from jobs.handoff import HANDED_OFF, HandedOff
from jobs.job_run import JobDeps, JobRun, OperationBody
from jobs.model import (
    RUNNING,
    WAITING,
    JsonDict,
    TaskRecord,
    TaskState,
    failed,
    next_attempt,
    utc_now,
)
from jobs.progress import JobStopped
from jobs.queueing import requeue
from jobs.task_store import TaskStore

log = structlog.get_logger("vidcorrect.job")

T = TypeVar("T")


async def run_task(
    ctx: dict[str, Any], task_id: str, attempt: int, operation: OperationBody
) -> str:
    """Run ``operation`` for attempt ``attempt`` of task ``task_id``; returns the end state.

    Expected failures (a bad video, bad parameters, the time limit) end as FAILURE with a clear
    message; anything else ends as FAILURE with code ``internal_error`` and is logged in full.
    A cancel request ends it as REVOKED. Cancellation by a worker shutdown hands the task back
    (PENDING, same attempt) and arq runs it again. A run of a superseded attempt (its worker was
    presumed dead and the task re-queued) does nothing.
    """
    deps: JobDeps = ctx["deps"]
    records = deps.records
    with structlog.contextvars.bound_contextvars(task_id=task_id, attempt=attempt):
        task = await records.get_task(task_id)
        with structlog.contextvars.bound_contextvars(
            video_id=task.video_id, operation=task.operation.value
        ):
            if task.attempt != attempt or task.state.finished:
                log.warning(
                    "run superseded, not started",
                    state=task.state.value,
                    current_attempt=task.attempt,
                )
                return task.state.value
            if await records.cancel_requested(task_id):
                return (await revoke_if_waiting(records, task_id) or task).state.value
            started = await records.transition(
                task_id,
                WAITING,
                state=TaskState.STARTED,
                status="Starting",
                started_at=utc_now(),
                progress=0,
                eta_seconds=None,
                worker_id=deps.worker_id,
            )
            if started is None:  # cancelled meanwhile, or another worker has it
                log.warning("task no longer waiting, not started")
                return (await records.get_task(task_id)).state.value
            await records.heartbeat(task_id)
            if deps.stats is not None:
                deps.stats.jobs_running += 1
            began = time.monotonic()
            ended: str | None = None
            try:
                ended = await _run(deps, started, operation)
                return ended
            finally:
                if deps.stats is not None:
                    deps.stats.jobs_running -= 1
                try:
                    await records.not_running(task_id)
                except RedisError as error:  # recovery drops the entry: the task has ended
                    log.warning("could not clear the heartbeat", error=str(error))
                if ended is not None and ended != HANDED_OFF:
                    await _record_run(deps, started, ended, time.monotonic() - began)


async def _video_exists(deps: JobDeps, task: TaskRecord) -> bool:
    """Whether the task's video is still there (not deleted while the job ran)."""
    try:
        await deps.records.get_video(task.video_id)
    except NotFound:
        return False
    return True


async def _record_run(deps: JobDeps, task: TaskRecord, state: str, seconds: float) -> None:
    """Count the run's duration by how it ended (a run handed back at shutdown is not)."""
    if deps.stats is None:
        return
    try:
        await deps.stats.record_run(task.operation.value, state, seconds)
    except RedisError as error:
        log.warning("run duration not counted", error=str(error))


async def revoke_if_waiting(records: TaskStore, task_id: str) -> TaskRecord | None:
    """End a task that no worker runs yet as REVOKED; ``None`` if it is not waiting."""
    return await records.transition(
        task_id,
        WAITING,
        state=TaskState.REVOKED,
        status="Cancelled before it started",
        finished_at=utc_now(),
    )


async def run_body(deps: JobDeps, task: TaskRecord, operation: OperationBody) -> str:
    """Run ``operation`` for the running ``task`` and record how it ended (the state, or
    :data:`jobs.handoff.HANDED_OFF`); the stitch of a chunked task runs here too."""
    return await _run(deps, task, operation)


async def _run(deps: JobDeps, task: TaskRecord, operation: OperationBody) -> str:
    started = time.monotonic()
    log.info("job started")
    run: JobRun | None = None
    supervisor: asyncio.Task[None] | None = None
    since = asyncio.get_running_loop().time()
    time_limit = deps.settings.job_timeout
    try:
        async with asyncio.timeout_at(since + time_limit) as limit:
            video = await deps.records.get_video(task.video_id)
            # A long video gets longer: the limit scales with its frames (Settings.time_limit).
            time_limit = deps.settings.time_limit(video.frame_count)
            limit.reschedule(since + time_limit)
            run = JobRun(deps, task, video)
            supervisor = asyncio.create_task(run.supervise())
            await run.begin()
            result = await operation(run)
            # Checked after the commit: a deletion of the video either finds the output in place
            # or is seen here (jobs.deletion); a Redis outage is waited out, as for the end.
            if run.cancel_requested or not await _settle(lambda: _video_exists(deps, task)):
                run.unpublish()
                raise JobStopped
    except asyncio.CancelledError:
        _remove_temp_files(run)
        log.warning("job interrupted; arq will run it again")
        await deps.records.transition(
            task.task_id,
            RUNNING,
            state=TaskState.PENDING,
            progress=0,
            eta_seconds=None,
            status="Interrupted by a worker shutdown; waiting to run again",
        )
        raise
    except HandedOff:
        log.info("job handed over to chunk jobs")
        return HANDED_OFF
    except JobStopped:
        _remove_temp_files(run)
        log.info("job cancelled")
        await _settle(
            lambda: deps.records.update_task(
                run.task if run else task,
                state=TaskState.REVOKED,
                status="Cancelled",
                eta_seconds=None,
                finished_at=utc_now(),
            )
        )
        return TaskState.REVOKED.value
    except Exception as exc:
        _remove_temp_files(run)
        reason = transient_reason(exc)
        if reason is not None and deps.queue is not None:
            delay = 2**task.attempt
            retry = next_attempt(task, f"Retrying in {delay} s after a transient error ({reason})")
            if retry is not None:
                return await _retry_later(deps, deps.queue, task, retry, delay, exc)
        code, message = describe_failure(exc, time_limit)
        if code == "internal_error":
            log.exception("job failed")
        else:
            log.warning("job failed", code=code)
        await _settle(
            lambda: deps.records.update_task(run.task if run else task, **failed(code, message))
        )
        return TaskState.FAILURE.value
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
    # (a chunked task's stitch gives its own: the time since the task started)
    result.setdefault("processing_time", round(time.monotonic() - started, 3))
    await _settle(
        lambda: run.update(
            state=TaskState.SUCCESS,
            progress=100,
            status="Done",
            result=result,
            eta_seconds=0,
            finished_at=utc_now(),
        )
    )
    log.info("job succeeded", processing_time=result["processing_time"])
    return TaskState.SUCCESS.value


#: How long a job that has ended waits for Redis to record how (seconds).
SETTLE_TIMEOUT = 120.0


async def _settle(write: Callable[[], Awaitable[T]]) -> T:
    """Record a job's end, waiting out a Redis outage: the work is done (its output is in
    place), and an end that is not recorded would have it done again."""
    delay = 0.2
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            return await write()
        except RedisError as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("the job's end is not recorded yet; waiting for redis", error=str(error))
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)


async def _retry_later(
    deps: JobDeps, queue: ArqRedis, task: TaskRecord, retry: JsonDict, delay: int, exc: Exception
) -> str:
    """Queue the next attempt (``retry``) after a transient error, in ``delay`` seconds."""
    log.warning("transient error; retrying", error=str(exc), delay=delay)
    retried = await requeue(
        deps.records, queue, deps.settings.queue_name, task.task_id, retry, delay=delay
    )
    if retried is None:
        return (await deps.records.get_task(task.task_id)).state.value
    return TaskState.RETRY.value


def _remove_temp_files(run: JobRun | None) -> None:
    if run is not None:
        run.remove_temp_files()
