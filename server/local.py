"""The degraded mode: jobs the server runs itself when Redis cannot be reached.

A submission that finds Redis away is not refused: the job runs in this process through the
same code as on a worker (``run_task`` and ``OPERATIONS``), with its record and events
in memory (:class:`MemoryTaskStore`), at most ``max_jobs`` at once, and its answers say
``"mode": "local"``. Such tasks are not in the history and are lost with the process; their
outputs are files like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor

import structlog

from jobs.errors import QueueFull
from jobs.job_run import JobDeps
from jobs.memory_store import MemoryTaskStore
from jobs.model import JsonDict, Operation, TaskRecord
from jobs.operations import OPERATIONS
from jobs.runner import run_task
from jobs.settings import Settings
from jobs.storage import Storage
from jobs.submit import RETRY_AFTER

log = structlog.get_logger("vidcorrect.local")

LOCAL_PREFIX = "local-"


class LocalJobs:
    """Runs and remembers the jobs of the degraded mode."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.store = MemoryTaskStore(storage)
        self._settings = settings
        self._executor = ThreadPoolExecutor(settings.max_jobs, thread_name_prefix="local-frames")
        self._deps = JobDeps(settings, self.store, storage, None, self._executor)
        self._slots = asyncio.Semaphore(settings.max_jobs)
        self._jobs: set[asyncio.Task[str]] = set()

    def owns(self, task_id: str) -> bool:
        """Whether ``task_id`` is one of this process's local tasks."""
        return task_id.startswith(LOCAL_PREFIX) and task_id in self.store

    async def submit(
        self,
        operation: Operation,
        video_id: int,
        params: JsonDict,
        submitted_by: str | None = None,
    ) -> TaskRecord:
        """Start a local task (it waits for a free slot); 429 past ``max_queued`` unfinished."""
        if len(self._jobs) >= self._settings.max_queued:
            raise QueueFull(
                f"{len(self._jobs)} tasks are already running here without Redis; submit again "
                f"in {RETRY_AFTER} s.",
                retry_after=RETRY_AFTER,
            )
        task = TaskRecord(
            task_id=LOCAL_PREFIX + uuid.uuid4().hex,
            operation=operation,
            video_id=video_id,
            params=params,
            mode="local",
            submitted_by=submitted_by,
        )
        await self.store.create_task(task)
        job = asyncio.create_task(self._run(task), name=f"local-{task.task_id}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        log.warning("redis unreachable: running the task in the server", task_id=task.task_id)
        return task

    async def _run(self, task: TaskRecord) -> str:
        async with self._slots:
            return await run_task(
                {"deps": self._deps}, task.task_id, task.attempt, OPERATIONS[task.operation]
            )

    async def close(self) -> None:
        """Stop the running local jobs (their records say they were interrupted)."""
        self.store.close_streams()
        for job in list(self._jobs):
            job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._jobs, return_exceptions=True)
        self._executor.shutdown(wait=True)
