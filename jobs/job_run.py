"""One execution of one task, as an operation sees it: its records, its source, its temp files
and their commit, its frame loops with their progress, and the supervisor that beats its
heartbeat and watches for a cancel request.

Provenance: a run knows the SHA-256 of the original it starts from (the upload's, or hashed
when it starts for a record of an older version) and hashes the original again before it
publishes anything (:meth:`JobRun.confirm_source`); an original that changed meanwhile fails
the task with :class:`jobs.errors.SourceChanged` and nothing is published.

An operation is an async function that receives a :class:`JobRun` and returns its ``result``
fields (an :data:`OperationBody`); :func:`jobs.runner.run_task` does the rest, so every
operation behaves the same to clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from jobs.errors import SourceChanged
from jobs.model import JsonDict, TaskRecord, VideoRecord
from jobs.progress import (
    FrameProgress,
    JobStopped,
    count_frames,
    publish_progress,
    watch_for_stall,
)
from jobs.settings import Settings
from jobs.stats import JobStats
from jobs.storage import Storage, file_sha256
from jobs.task_store import TaskStore

log = structlog.get_logger("vidcorrect.job")

T = TypeVar("T")

#: The status of a job while it hashes its original, and its output.
CHECKING_ORIGINAL = "Checking the original"
CHECKING_OUTPUT = "Checking the output"
#: How often a running job checks for a cancel request (seconds).
CANCEL_POLL_INTERVAL = 0.5
#: How often a running job beats its heartbeat, at most (seconds).
HEARTBEAT_INTERVAL = 5.0


@dataclass(frozen=True)
class JobDeps:
    """What jobs need from their worker process; built once in the worker's start-up hook."""

    settings: Settings
    records: TaskStore
    storage: Storage
    #: The worker's arq pool, to queue retries (None: a local job, which is not retried).
    queue: ArqRedis | None
    #: Frame loops run here, one thread per concurrent job, never on the event loop.
    executor: ThreadPoolExecutor
    #: The worker's id, stored in the records of the tasks it starts (None: a local job).
    worker_id: str | None = None
    #: Where the worker counts durations and frames (None: not counted, as for local jobs).
    stats: JobStats | None = None


@dataclass
class JobRun:
    """One execution of one task: what an operation needs, and what must be cleaned up.

    :attr:`task` is the current record; :meth:`update` changes it in Redis and logs the event.
    """

    deps: JobDeps
    task: TaskRecord
    video: VideoRecord
    temp_files: list[Path] = field(default_factory=list)
    #: The outputs this run committed, taken back (:meth:`unpublish`) if it is stopped after all.
    published: list[Path] = field(default_factory=list)
    #: Set by the supervisor when a client asked to cancel; frame loops stop at the next frame.
    cancel_requested: bool = False
    #: The SHA-256 (hex) of the original the run started from: the upload's, or for a video
    #: record of an older version the one :meth:`begin` hashed.
    source_sha256: str | None = None
    _progress: FrameProgress | None = None

    def request_stop(self) -> None:
        """Make the running stage (and any later one) stop."""
        self.cancel_requested = True
        if self._progress is not None:
            self._progress.stop = True

    @property
    def source_path(self) -> Path:
        """The original upload (read only)."""
        return self.deps.storage.resolve(self.video.stored_name)

    @property
    def stats(self) -> JobStats | None:
        """Where the worker counts this run's frames (None: not counted)."""
        return self.deps.stats

    async def update(self, **changes: Any) -> None:
        """Change the task's record and publish the new state."""
        self.task = await self.deps.records.update_task(self.task, **changes)

    def temp_path(self, suffix: str) -> Path:
        """A temp file for this run, removed by :meth:`remove_temp_files` unless committed."""
        path = self.deps.storage.temp_path(self.task.task_id, suffix)
        self.temp_files.append(path)
        return path

    async def begin(self) -> None:
        """Know the original's SHA-256 before the operation reads it: the upload's, else (a
        record of an older version has none) hashed now."""
        self.source_sha256 = self.video.sha256 or await self._hash(
            self.source_path, CHECKING_ORIGINAL
        )

    async def confirm_source(self) -> str:
        """The original's SHA-256, hashed again at the run's end; :class:`SourceChanged` if it
        is not the one the run started from (then nothing may be published)."""
        now = await self._hash(self.source_path, CHECKING_ORIGINAL)
        if now != self.source_sha256:
            raise SourceChanged(
                "The original video changed while the job ran (its SHA-256 differs from the one "
                "the job started from), so the output was not published. Upload the video again "
                "and submit the task for it."
            )
        return now

    async def commit(self, temp: Path, name: str) -> JsonDict:
        """Publish a finished temp file under its stored name: hash it, confirm the original is
        unchanged (:meth:`confirm_source`), then move it there atomically. Returns the result's
        provenance fields, ``source_sha256`` and ``output_sha256`` (hex)."""
        output_sha256 = await self._hash(temp, CHECKING_OUTPUT)
        source_sha256 = await self.confirm_source()
        final = await asyncio.get_running_loop().run_in_executor(
            self.deps.executor, self.deps.storage.commit, temp, name
        )
        self.temp_files.remove(temp)
        self.published.append(final)
        return {"source_sha256": source_sha256, "output_sha256": output_sha256}

    async def _hash(self, path: Path, status: str) -> str:
        """The SHA-256 of a file, hashed in the job thread pool; it takes seconds for a large
        video, so the task's ``status`` says what it does meanwhile (if Redis is away, the
        work goes on: its end is recorded once Redis is back)."""
        try:
            await self.update(status=status)
        except RedisError as error:
            log.warning("status not published", error=str(error))
        return await asyncio.get_running_loop().run_in_executor(
            self.deps.executor, file_sha256, path
        )

    def unpublish(self) -> None:
        """Remove the outputs this run committed: it was stopped after its commit (a cancel, or
        its video deleted meanwhile)."""
        for path in self.published:
            path.unlink(missing_ok=True)
        self.published.clear()

    def remove_temp_files(self) -> None:
        """Remove the temp files not committed (the run did not succeed)."""
        for path in self.temp_files:
            path.unlink(missing_ok=True)
        self.temp_files.clear()

    async def run_frames(
        self,
        total: int,
        work: Callable[[FrameProgress], T],
        *,
        label: str = "Processing",
        span: tuple[int, int] = (0, 99),
        ceiling: int | None = None,
    ) -> T:
        """Run a blocking frame loop in the job thread pool while publishing its progress.

        ``work`` must call its :class:`FrameProgress` after each frame. The stage's progress maps
        onto ``span`` of the task's 0-100 (a job of several stages gives each its share), and the
        status reads ``"{label} frame 450/1000 (62 fps)"``. When this coroutine is cancelled
        (time limit, shutdown) the loop is told to stop and awaited, so no thread goes on writing
        a file that is about to be removed. A loop that reports no progress for
        ``stall_timeout`` seconds is stopped and raises :class:`jobs.errors.Stalled`
        (:func:`jobs.progress.watch_for_stall`).
        """
        if self.cancel_requested:
            raise JobStopped
        progress = FrameProgress(total)
        self._progress = progress
        stats = self.stats
        if stats is not None:
            stats.stage_started(progress)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.deps.executor, work, progress)
        publisher = asyncio.create_task(
            publish_progress(self, progress, label, span, span[1] if ceiling is None else ceiling)
        )
        stall_timeout = self.deps.settings.stall_timeout
        watchdog = (
            asyncio.create_task(watch_for_stall(progress, stall_timeout)) if stall_timeout else None
        )
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            progress.stop = True
            with contextlib.suppress(BaseException):
                await future
            raise
        finally:
            self._progress = None
            if stats is not None:
                stats.stage_ended(progress)
            for helper in (publisher, watchdog):
                if helper is not None:
                    helper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await helper
        await count_frames(self, progress, label)
        return outcome

    async def supervise(self) -> None:
        """Until cancelled: beat the task's heartbeat and watch for a cancel request."""
        records = self.deps.records
        beat_every = max(1.0, min(HEARTBEAT_INTERVAL, self.deps.settings.heartbeat_timeout / 3))
        last_beat = 0.0
        while True:
            now = time.monotonic()
            try:
                if now - last_beat >= beat_every:
                    await records.heartbeat(self.task.task_id)
                    last_beat = now
                if not self.cancel_requested and await records.cancel_requested(self.task.task_id):
                    log.info("cancel requested")
                    self.request_stop()
            except RedisError as error:  # the job goes on; a lost heartbeat means a retry
                log.warning("supervisor could not reach redis", error=str(error))
            await asyncio.sleep(CANCEL_POLL_INTERVAL)


#: What an operation does: its body gets the run and returns the task's ``result`` fields.
OperationBody = Callable[[JobRun], Awaitable[JsonDict]]
