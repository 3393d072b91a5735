"""Crash recovery: a task whose worker stopped beating its heartbeat is run again.

Every running job refreshes its heartbeat (a score in ``P:running``) every few seconds. Every
worker runs :func:`recovery_loop`; when a heartbeat is older than ``heartbeat_timeout``, one of
them (a short Redis lock decides) marks the task RETRY with the reason, removes the lost run's
temp files and queues the next attempt as a new arq job, at most ``MAX_ATTEMPTS`` in all; after
that the task fails with code ``worker_lost``. (arq by itself would re-run such a job only after
its timeout, days here: recovery takes the lost attempt's arq job off the queue.) A run of a
superseded attempt that arq starts later does nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from redis.exceptions import RedisError

from jobs.chunked import Suspects, recover_chunks
from jobs.errors import NotFound
from jobs.job_run import JobDeps
from jobs.model import MAX_ATTEMPTS, RUNNING, failed, next_attempt
from jobs.queueing import forget_lost_attempt, requeue
from jobs.redis_store import RedisTaskStore

log = structlog.get_logger("vidcorrect.recovery")


async def recover_lost_tasks(ctx: dict[str, Any]) -> int:
    """One round: re-queue (or fail) the running tasks whose heartbeat is stale."""
    deps: JobDeps = ctx["deps"]
    records: RedisTaskStore = ctx["records"]
    settings = deps.settings
    recovered = 0
    for task_id in await records.stale_running(time.time() - settings.heartbeat_timeout):
        if not await records.claim_recovery(task_id, max(10, settings.heartbeat_timeout)):
            continue  # another worker handles it
        await records.not_running(task_id)
        try:
            task = await records.get_task(task_id)
        except NotFound:
            continue
        if task.state not in RUNNING:
            continue
        deps.storage.remove_temps(task_id)
        await forget_lost_attempt(ctx["redis"], settings.queue_name, task_id, task.attempt)
        reason = f"its worker was lost (no heartbeat for {settings.heartbeat_timeout} s)"
        with structlog.contextvars.bound_contextvars(
            task_id=task_id,
            attempt=task.attempt,
            video_id=task.video_id,
            operation=task.operation.value,
        ):
            retry = next_attempt(task, f"Retrying: {reason}")
            if retry is None:
                log.warning("task lost its worker too often; failing it")
                await records.transition(
                    task_id,
                    RUNNING,
                    **failed(
                        "worker_lost",
                        f"The task failed because {reason} on each of its {MAX_ATTEMPTS} attempts.",
                        status=f"Failed: {reason}, {MAX_ATTEMPTS} times",
                    ),
                )
                continue
            retried = await requeue(records, ctx["redis"], settings.queue_name, task_id, retry)
            if retried is not None:
                log.warning("task re-queued after losing its worker")
                recovered += 1
    return recovered


async def recovery_loop(ctx: dict[str, Any]) -> None:
    """Run :func:`recover_lost_tasks` and :func:`jobs.chunked.recover_chunks` (lost chunks,
    cancelled and ended chunked tasks) every few seconds until cancelled."""
    deps: JobDeps = ctx["deps"]
    interval = max(1.0, min(5.0, deps.settings.heartbeat_timeout / 3))
    suspects: Suspects = {}
    while True:
        try:
            await recover_lost_tasks(ctx)
            await recover_chunks(deps, suspects)
        except RedisError as error:
            log.warning("recovery round could not reach redis", error=str(error))
        await asyncio.sleep(interval)
