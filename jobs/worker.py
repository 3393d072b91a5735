"""The arq worker: ``arq jobs.worker.WorkerSettings`` (or ``vidcorrect worker``).

``WorkerSettings`` is built on first access from :meth:`Settings.from_env`, so importing this
module reads no environment; the server builds its in-process worker from its own settings with
:func:`worker_options`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from arq.cron import cron
from arq.typing import WorkerCoroutine
from arq.worker import Worker, func
from redis.exceptions import RedisError

from jobs.chunked import CHUNK_JOB, STITCH_JOB, run_chunk, run_stitch
from jobs.frame_process import start_forkserver
from jobs.history import prune_history
from jobs.job_run import JobDeps, OperationBody
from jobs.liveness import WorkerBeat, new_worker_id
from jobs.logs import configure_logging
from jobs.operations import OPERATIONS, stitch_body
from jobs.queueing import JOB_NAMES
from jobs.recovery import recovery_loop
from jobs.redis_store import RedisTaskStore
from jobs.runner import run_task
from jobs.settings import Settings
from jobs.stats import JobStats
from jobs.storage import Storage, private_umask
from jobs.webhooks import HTTP_TIMEOUT, Deliverer

log = structlog.get_logger("vidcorrect.worker")

#: Seconds a stopping worker waits for the webhook deliveries it is making.
WEBHOOK_STOP_TIMEOUT = HTTP_TIMEOUT + 5

#: arq's own limit sits above ours, so a job always ends through our timeout handling first:
#: above the longest limit any job may get (Settings.longest_time_limit, which scales with the
#: video's length), since arq's is one per function, fixed when the worker starts.
ARQ_TIMEOUT_MARGIN = 60


async def startup(ctx: dict[str, Any]) -> None:
    """arq hook: build the jobs' dependencies on the worker's Redis pool, and start beating
    this worker's liveness entry."""
    settings: Settings = ctx["settings"]
    storage = Storage(settings.data_dir)
    storage.ensure()
    worker_id = new_worker_id()
    stats = JobStats(ctx["redis"], settings.keys)
    await asyncio.to_thread(start_forkserver)  # the process the frame loops are forked from
    ctx["records"] = RedisTaskStore(ctx["redis"], settings.keys, webhook_url=settings.webhook_url)
    ctx["deps"] = JobDeps(
        settings=settings,
        records=ctx["records"],
        storage=storage,
        queue=ctx["redis"],
        executor=ThreadPoolExecutor(settings.max_jobs, thread_name_prefix="frames"),
        worker_id=worker_id,
        stats=stats,
    )
    beat = WorkerBeat(ctx["redis"], settings, worker_id, stats)
    ctx["beat"] = beat
    try:
        await beat.beat()
    except RedisError as error:  # it beats again in a few seconds
        log.warning("worker beat could not reach redis", error=str(error))
    ctx["beating"] = asyncio.create_task(beat.run(), name="worker-beat")
    ctx["recovery"] = asyncio.create_task(recovery_loop(ctx), name="recovery")
    if settings.webhook_hosts:  # no webhook can be queued without an allowed host
        ctx["deliverer"] = deliverer = Deliverer(ctx["redis"], settings)
        ctx["webhooks"] = asyncio.create_task(deliverer.run(), name="webhooks")
    log.info("worker started", worker_id=worker_id, max_jobs=settings.max_jobs)


async def shutdown(ctx: dict[str, Any]) -> None:
    """arq hook: release the frame threads (running jobs have been awaited by arq already) and
    take this worker out of the live ones."""
    deliverer: Deliverer | None = ctx.get("deliverer")
    if deliverer is not None:  # let the deliveries in flight end, rather than repeat them
        deliverer.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ctx["webhooks"]), WEBHOOK_STOP_TIMEOUT)
    for name in ("webhooks", "recovery", "beating"):
        background: asyncio.Task[None] | None = ctx.get(name)
        if background is not None:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
    beat: WorkerBeat | None = ctx.get("beat")
    if beat is not None:
        try:
            await beat.forget()
        except (RedisError, OSError) as error:  # it is forgotten when its beats grow old
            log.warning("worker entry not removed", error=str(error))
    deps: JobDeps | None = ctx.get("deps")
    if deps is not None:
        deps.executor.shutdown(wait=True)


async def startup_with_logging(ctx: dict[str, Any]) -> None:
    """arq hook for a stand-alone worker process, which configures its own logging."""
    settings: Settings = ctx["settings"]
    configure_logging(settings.log_format, settings.log_level)
    private_umask()  # ``arq jobs.worker.WorkerSettings`` starts here, not in ``vidcorrect worker``
    await startup(ctx)


def arq_job(body: OperationBody) -> WorkerCoroutine:
    """The arq job that runs an operation's body: ``(ctx, task_id, attempt)``, queued by
    :func:`jobs.queueing.enqueue_attempt`."""

    async def job(ctx: dict[str, Any], task_id: str, attempt: int = 1) -> str:
        return await run_task(ctx, task_id, attempt, body)

    return job


async def encode_chunk_job(
    ctx: dict[str, Any], task_id: str, index: int, attempt: int, chunk_attempt: int
) -> str:
    """The arq job of one chunk of a long task (:func:`jobs.chunked.run_chunk`)."""
    return await run_chunk(ctx, task_id, index, attempt, chunk_attempt)


async def stitch_job(ctx: dict[str, Any], task_id: str, attempt: int) -> str:
    """The arq job that stitches a long task's parts (:func:`jobs.chunked.run_stitch`)."""
    return await run_stitch(ctx, task_id, attempt, stitch_body)


def arq_timeout(settings: Settings) -> int:
    """arq's own time limit of every job (seconds): above any limit of ours."""
    return settings.longest_time_limit + ARQ_TIMEOUT_MARGIN


def worker_options(settings: Settings, *, own_process: bool = False) -> dict[str, Any]:
    """Keyword arguments for :class:`arq.worker.Worker` for these settings."""
    timeout = arq_timeout(settings)
    return {
        "functions": [
            func(arq_job(body), name=JOB_NAMES[operation], timeout=timeout)
            for operation, body in OPERATIONS.items()
        ]
        + [
            func(encode_chunk_job, name=CHUNK_JOB, timeout=timeout),
            func(stitch_job, name=STITCH_JOB, timeout=timeout),
        ],
        "cron_jobs": [cron(prune_history, name="prune_history", minute=17, run_at_startup=True)],
        "queue_name": settings.queue_name,
        "redis_settings": settings.redis_settings(),
        "max_jobs": settings.max_jobs,
        "job_timeout": timeout,
        "keep_result": 3600,
        # Attempts are counted by the task records (jobs.recovery); arq's own count only grows
        # when a shutdown hands a job back, which must never drop it.
        "max_tries": 1000,
        "health_check_interval": 10,
        # Pick up new jobs within 20 ms (arq polls its queue; the default is 0.5 s): one cheap
        # Redis read (ZRANGEBYSCORE) per poll, 50 a second per worker.
        "poll_delay": 0.02,
        "ctx": {"settings": settings},
        "on_startup": startup_with_logging if own_process else startup,
        "on_shutdown": shutdown,
    }


class ResilientWorker(Worker):
    """An arq worker that outlives a Redis outage: a failed poll is logged and tried again,
    where arq's own worker would end its main loop."""

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as error:
            log.warning("worker lost redis; polling again", error=str(error))
            await asyncio.sleep(REDIS_RETRY_DELAY)


#: Pause after a failed poll of the queue (seconds).
REDIS_RETRY_DELAY = 1.0


@contextlib.asynccontextmanager
async def in_process_worker(settings: Settings) -> AsyncIterator[Worker]:
    """Run an arq worker in the current event loop (the embedded mode, and tests).

    On exit it stops taking jobs, hands running ones back (their tasks return to PENDING and arq
    re-queues them) and closes. arq's own ``close()`` re-raises the cancellation of a job that
    was just finishing, skipping the rest of its clean-up, so the jobs are settled first.
    """
    worker = ResilientWorker(**worker_options(settings), handle_signals=False)
    main = asyncio.create_task(worker.main(), name="arq-worker")
    try:
        yield worker
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        running = list(worker.tasks.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        worker.tasks.clear()
        try:
            await worker.close()
        except (RedisError, OSError) as error:  # Redis went first; nothing is left to tidy there
            log.warning("worker closed without redis", error=str(error))


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        return type("WorkerSettings", (), worker_options(Settings.from_env(), own_process=True))
    raise AttributeError(name)
