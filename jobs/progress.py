"""A running stage's progress: the frames a frame loop has done, the smoothed rate and ETA
computed from them, and the loop that publishes them to the task's record and counts the frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from jobs.errors import Stalled
from jobs.model import TaskRecord, TaskState
from jobs.stats import JobStats

log = structlog.get_logger("vidcorrect.job")

#: How often the progress of a running job is written to its record and event log (seconds).
PUBLISH_INTERVAL = 0.5
#: Work measured before an ETA is given (seconds).
ETA_AFTER = 3.0
#: Weight of the newest rate measurement in the smoothed rate.
RATE_SMOOTHING = 0.3
#: How often, at most, the stall watchdog looks at a frame loop (seconds).
STALL_CHECK_INTERVAL = 1.0

#: The stage name in the frame counter of each run_frames label (an output is checked while it
#: is encoded, so its frames count once, as "encode"; a long video's chunks count as "encode"
#: and its stitch, which copies their packets, as "stitch").
STAGES = {
    "Analyzing": "analyze",
    "Encoding": "encode",
    "Analyzing and encoding": "encode",
    "Stitching": "stitch",
}


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
        #: When the loop last reported (or started): what the stall watchdog measures from.
        self.reported_at = clock()
        #: Set (with ``stop``) by :func:`watch_for_stall`: the loop then raises :class:`Stalled`.
        self.stalled: Stalled | None = None
        self._last_sample: tuple[float, int] | None = None
        self.rate: float | None = None  # frames per second, smoothed
        self.counted = 0  # frames already added to the worker's frame counter

    def __call__(self, done: int) -> None:
        if self.stop:
            raise self.stalled or JobStopped()
        now = self._clock()
        if self._first_frame_at is None:
            self._first_frame_at = now
        self.reported_at = now
        self.done = done

    def idle_seconds(self) -> float:
        """Seconds since the loop last reported progress (or started)."""
        return self._clock() - self.reported_at

    def stall(self, timeout: float) -> None:
        """Stop the loop as stalled: its next report (or its child's waiter, which then kills
        the child: jobs.frame_process) raises :class:`Stalled`."""
        self.stalled = Stalled(
            f"The job made no progress for {timeout:g} s (its frame loop hung at frame "
            f"{self.done} of {self.total}) and was stopped on each of its attempts. The video "
            "may be damaged (check that it plays to the end) or the server badly overloaded; "
            "submit it again once that is resolved."
        )
        self.stop = True

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


class ProgressTarget(Protocol):
    """The run a stage's progress is published to (:class:`jobs.job_run.JobRun`)."""

    @property
    def task(self) -> TaskRecord: ...

    @property
    def stats(self) -> JobStats | None: ...

    async def update(self, **changes: Any) -> None: ...


async def publish_progress(
    run: ProgressTarget, progress: FrameProgress, label: str, span: tuple[int, int], ceiling: int
) -> None:
    """Until cancelled: publish the stage's start at once, then its progress at each tick.

    The stage's fraction maps onto ``span`` of the task's 0-100, held below ``ceiling`` and 99
    and never below what an earlier stage published; the status reads
    ``"{label} frame 450/1000 (62 fps)"``.
    """
    last: int | None = None
    while True:
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
            await run.update(
                state=TaskState.PROGRESS,
                progress=max(run.task.progress, min(99, percent)),
                status=status,
                eta_seconds=progress.eta_seconds(),
            )
        except RedisError as error:  # the frames go on; the next tick publishes again
            log.warning("progress not published", error=str(error))
        await count_frames(run, progress, label)
        await asyncio.sleep(PUBLISH_INTERVAL)


async def watch_for_stall(progress: FrameProgress, stall_after: float) -> None:
    """Until cancelled: stop the frame loop as stalled (:meth:`FrameProgress.stall`) once it has
    reported nothing for ``stall_after`` seconds (a hung decoder or frame process). Only frame loops
    are watched; a job's other stages (hashing a large file) are not."""
    while True:
        idle = progress.idle_seconds()
        if idle >= stall_after:
            log.warning(
                "frame loop stalled; stopping it",
                idle_seconds=round(idle, 1),
                frames_done=progress.done,
                frames_total=progress.total,
            )
            progress.stall(stall_after)
            return
        await asyncio.sleep(min(STALL_CHECK_INTERVAL, stall_after - idle))


async def count_frames(run: ProgressTarget, progress: FrameProgress, label: str) -> None:
    """Add the stage's frames since the last call to the worker's frame counter."""
    stats = run.stats
    frames = progress.done - progress.counted
    if stats is None or frames <= 0:
        return
    progress.counted += frames  # before the await: a later call never counts them again
    stage = STAGES.get(label, "process")
    try:
        # Shielded: the publisher is cancelled at the stage's end, and frames already taken
        # off the count must still reach it.
        await asyncio.shield(stats.add_frames(run.task.operation.value, stage, frames))
    except RedisError as error:
        log.warning("frames not counted", error=str(error))
