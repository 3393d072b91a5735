"""What every job shares: state changes, progress publishing, time limit, temp files, errors.

An operation is an async function that receives a :class:`JobRun` and returns its ``result``
fields; :func:`run_task` does the rest, so every operation behaves the same to clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from jobs.errors import VidcorrectError
from jobs.model import (
    MAX_ATTEMPTS,
    RUNNING,
    WAITING,
    JsonDict,
    TaskRecord,
    TaskState,
    VideoRecord,
    utc_now,
)
from jobs.queueing import enqueue_attempt
from jobs.settings import Settings
from jobs.stats import JobStats
from jobs.storage import Storage
from jobs.task_store import TaskStore
from jobs.video import InvalidVideo, VideoError

log = structlog.get_logger("vidcorrect.job")

T = TypeVar("T")

#: How often the progress of a running job is written to its record and event log (seconds).
PUBLISH_INTERVAL = 0.5
#: Work measured before an ETA is given (seconds).
ETA_AFTER = 3.0
#: How often a running job checks for a cancel request (seconds).
CANCEL_POLL_INTERVAL = 0.5
#: How often a running job beats its heartbeat, at most (seconds).
HEARTBEAT_INTERVAL = 5.0
#: Weight of the newest rate measurement in the smoothed rate.
RATE_SMOOTHING = 0.3


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


class JobStopped(Exception):
    """Raised inside a frame loop (through its progress callback) to make it stop early."""


class FrameProgress:
    """Shared by a blocking frame loop, which calls it per frame, and the publisher, which reads it.

    Plain attribute writes are atomic under the GIL, so no lock is needed. The publisher calls
    :meth:`measure` at each tick to update the smoothed rate the ETA is computed from.
    """

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.stop = False
        self._clock = clock
        self._first_frame_at: float | None = None
        self._last_sample: tuple[float, int] | None = None
        self.rate: float | None = None  # frames per second, smoothed
        self.counted = 0  # frames already added to the worker's frame counter

    def __call__(self, done: int) -> None:
        if self.stop:
            raise JobStopped
        if self._first_frame_at is None:
            self._first_frame_at = self._clock()
        self.done = done

    def measure(self) -> None:
        """Fold the frames done since the last call into the smoothed rate."""
        if self._first_frame_at is None:
            return
        now, done = self._clock(), self.done
        since, before = self._last_sample or (self._first_frame_at, 0)
        if now - since <= 0:
            return
        rate = (done - before) / (now - since)
        self.rate = (
            rate
            if self.rate is None
            else (RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * self.rate)
        )
        self._last_sample = (now, done)

    def fraction(self) -> float:
        """Frames done over total, 0-1."""
        if self.total <= 0:
            return 0.0
        return min(1.0, self.done / self.total)

    def eta_seconds(self) -> float | None:
        """Seconds left at the smoothed rate, once ``ETA_AFTER`` seconds have been measured."""
        if self._first_frame_at is None or not self.rate:
            return None
        if self._clock() - self._first_frame_at < ETA_AFTER:
            return None
        return round(max(0, self.total - self.done) / self.rate, 1)


@dataclass
class JobRun:
    """One execution of one task: what an operation needs, and what must be cleaned up.

    :attr:`task` is the current record; :meth:`update` changes it in Redis and logs the event.
    """

    deps: JobDeps
    task: TaskRecord
    video: VideoRecord
    temp_files: list[Path] = field(default_factory=list)
    #: Set by the supervisor when a client asked to cancel; frame loops stop at the next frame.
    cancel_requested: bool = False
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

    async def update(self, **changes: Any) -> None:
        """Change the task's record and publish the new state."""
        self.task = await self.deps.records.update_task(self.task, **changes)

    def temp_path(self, suffix: str) -> Path:
        """A temp file for this run, removed by :func:`run_task` unless committed."""
        path = self.deps.storage.temp_path(self.task.task_id, suffix)
        self.temp_files.append(path)
        return path

    async def commit(self, temp: Path, name: str) -> str:
        """Move a finished temp file atomically to its stored name; returns the name."""
        await asyncio.get_running_loop().run_in_executor(
            self.deps.executor, self.deps.storage.commit, temp, name
        )
        self.temp_files.remove(temp)
        return name

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
        a file that is about to be removed.
        """
        if self.cancel_requested:
            raise JobStopped
        progress = FrameProgress(total)
        self._progress = progress
        stats = self.deps.stats
        if stats is not None:
            stats.stage_started(progress)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.deps.executor, work, progress)
        publisher = asyncio.create_task(
            self._publish(progress, label, span, span[1] if ceiling is None else ceiling)
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
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        await self._count_frames(progress, label)
        return outcome

    async def _count_frames(self, progress: FrameProgress, label: str) -> None:
        """Add the stage's frames since the last call to the worker's frame counter."""
        stats = self.deps.stats
        frames = progress.done - progress.counted
        if stats is None or frames <= 0:
            return
        progress.counted += frames  # before the await: a later call never counts them again
        stage = STAGES.get(label, "process")
        try:
            # Shielded: the publisher is cancelled at the stage's end, and frames already taken
            # off the count must still reach it.
            await asyncio.shield(stats.add_frames(self.task.operation.value, stage, frames))
        except RedisError as error:
            log.warning("frames not counted", error=str(error))

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

    async def _publish(
        self, progress: FrameProgress, label: str, span: tuple[int, int], ceiling: int
    ) -> None:
        last: int | None = None
        while True:  # publishes the stage's start at once, then its progress at each tick
            progress.measure()
            if progress.done == last:
                await asyncio.sleep(PUBLISH_INTERVAL)
                continue
            last = progress.done
            status = f"{label} frame {progress.done}/{progress.total}"
            if progress.rate:
                status += f" ({progress.rate:.0f} fps)"
            percent = min(ceiling, span[0] + int((span[1] - span[0]) * progress.fraction()))
            try:
                await self.update(
                    state=TaskState.PROGRESS,
                    progress=max(self.task.progress, min(99, percent)),
                    status=status,
                    eta_seconds=progress.eta_seconds(),
                )
            except RedisError as error:  # the frames go on; the next tick publishes again
                log.warning("progress not published", error=str(error))
            await self._count_frames(progress, label)
            await asyncio.sleep(PUBLISH_INTERVAL)


#: The stage name in the frame counter of each run_frames label (an output is checked while it
#: is encoded, so its frames count once, as "encode").
STAGES = {"Analyzing": "analyze", "Encoding": "encode", "Analyzing and encoding": "encode"}


Operation = Callable[[JobRun], Awaitable[JsonDict]]


async def run_task(ctx: dict[str, Any], task_id: str, attempt: int, operation: Operation) -> str:
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
                if ended is not None:
                    await _record_run(deps, started, ended, time.monotonic() - began)


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


async def _run(deps: JobDeps, task: TaskRecord, operation: Operation) -> str:
    started = time.monotonic()
    log.info("job started")
    run: JobRun | None = None
    supervisor: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(deps.settings.job_timeout):
            video = await deps.records.get_video(task.video_id)
            run = JobRun(deps, task, video)
            supervisor = asyncio.create_task(run.supervise())
            result = await operation(run)
            if run.cancel_requested:
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
        if _is_transient(exc) and task.attempt < MAX_ATTEMPTS and deps.queue is not None:
            return await _retry_later(deps, task, exc)
        code, message = _describe_failure(exc, deps.settings.job_timeout)
        if code == "internal_error":
            log.exception("job failed")
        else:
            log.warning("job failed", code=code)
        await _settle(
            lambda: deps.records.update_task(
                run.task if run else task,
                state=TaskState.FAILURE,
                status=f"Failed: {message}",
                error={"code": code, "message": message},
                eta_seconds=None,
                finished_at=utc_now(),
            )
        )
        return TaskState.FAILURE.value
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
    result["processing_time"] = round(time.monotonic() - started, 3)
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


#: Storage errors worth another try: I/O errors, busy or stale (network) files, time-outs.
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE})


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, RedisError):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


async def _retry_later(deps: JobDeps, task: TaskRecord, exc: Exception) -> str:
    """Queue the next attempt after a transient error, with a growing delay."""
    delay = 2**task.attempt
    reason = os.strerror(exc.errno or 0) if isinstance(exc, OSError) else type(exc).__name__
    log.warning("transient error; retrying", error=str(exc), delay=delay)
    retried = await deps.records.transition(
        task.task_id,
        RUNNING,
        state=TaskState.RETRY,
        attempt=task.attempt + 1,
        progress=0,
        eta_seconds=None,
        status=f"Retrying in {delay} s after a transient error ({reason}); "
        f"attempt {task.attempt + 1} of {MAX_ATTEMPTS}",
    )
    if retried is None:
        return (await deps.records.get_task(task.task_id)).state.value
    assert deps.queue is not None
    await enqueue_attempt(deps.queue, deps.settings.queue_name, retried, delay=delay)
    return TaskState.RETRY.value


def _remove_temp_files(run: JobRun | None) -> None:
    if run is None:
        return
    for path in run.temp_files:
        path.unlink(missing_ok=True)
    run.temp_files.clear()


#: Storage errors that mean "the disk is full" (EFBIG: a file-size limit was reached).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _describe_failure(exc: Exception, timeout: int) -> tuple[str, str]:
    if isinstance(exc, TimeoutError):
        return "timeout", f"The job ran longer than its limit of {timeout} s and was stopped."
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return "no_space", (
            "The server ran out of storage space while writing the output "
            f"({os.strerror(exc.errno or 0)}); the partial output was removed and the original "
            "is untouched. Submit again once space has been freed."
        )
    if isinstance(exc, InvalidVideo):
        return "invalid_video", str(exc)
    if isinstance(exc, VideoError):
        return "encode_failed", str(exc)
    if isinstance(exc, VidcorrectError):
        return exc.code, exc.message
    return "internal_error", "The job failed unexpectedly; the error was logged with its task id."
