"""What workers measure about their jobs, kept in Redis so that any server can expose it.

Workers run in other processes (often on other machines) than the server that answers
``/metrics``, so they add their numbers to one Redis hash, ``P:stats:jobs``
(:attr:`Keys.job_stats`):

    duration|<operation>|<state>|<i>   runs that ended in <state> within DURATION_BUCKETS[i]
                                       (i = len(DURATION_BUCKETS): longer)
    duration_sum|<operation>|<state>   their seconds, summed
    frames|<operation>|<stage>         frames the stage went through (analyze, encode, verify)

A scrape reads the whole hash (a few hundred fields at most). Each worker also knows what it is
doing right now (:class:`JobStats` tracks its running stages), which its liveness beat publishes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, cast

from redis.asyncio import Redis

from jobs.keys import Keys

#: Upper bounds of the job duration buckets (seconds): jobs take from seconds to hours.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


class Rated(Protocol):
    """A running stage's frame counter (:class:`jobs.progress.FrameProgress`)."""

    @property
    def rate(self) -> float | None: ...


class JobStats:
    """One worker's job measurements: written to Redis as jobs run, and its current activity."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.job_stats
        self._stages: set[Rated] = set()
        #: Jobs this worker is running now.
        self.jobs_running = 0

    def stage_started(self, stage: Rated) -> None:
        """A frame loop started: its rate counts in :meth:`current_fps` until it ends."""
        self._stages.add(stage)

    def stage_ended(self, stage: Rated) -> None:
        """The frame loop ended."""
        self._stages.discard(stage)

    def current_fps(self) -> float:
        """Frames per second of all running stages together (smoothed rates)."""
        return sum(stage.rate or 0.0 for stage in self._stages)

    async def add_frames(self, operation: str, stage: str, frames: int) -> None:
        """Count ``frames`` more frames gone through by ``stage`` of an ``operation`` job."""
        if frames > 0:
            field_name = f"frames|{operation}|{stage}"
            await cast(Awaitable[int], self._redis.hincrby(self._key, field_name, frames))

    async def record_run(self, operation: str, state: str, seconds: float) -> None:
        """Count one run of an ``operation`` job that ended in ``state`` after ``seconds``."""
        bucket = next(
            (i for i, bound in enumerate(DURATION_BUCKETS) if seconds <= bound),
            len(DURATION_BUCKETS),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._key, f"duration|{operation}|{state}|{bucket}", 1)
            pipe.hincrbyfloat(self._key, f"duration_sum|{operation}|{state}", seconds)
            await pipe.execute()


@dataclass
class Histogram:
    """One histogram series: counts per bucket (not cumulative) and the sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as the Prometheus exposition wants them, ``+Inf`` last."""
        bounds = [repr(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
        running = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip(bounds, self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


@dataclass
class JobTotals:
    """What :func:`read_job_stats` found."""

    durations: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    frames: dict[tuple[str, str], int] = field(default_factory=dict)


async def read_job_stats(redis: Redis, keys: Keys) -> JobTotals:
    """Every worker's job measurements so far."""
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(keys.job_stats))
    totals = JobTotals()
    for key, value in raw.items():
        kind, *labels = key.decode().split("|")
        if kind == "frames" and len(labels) == 2:
            totals.frames[(labels[0], labels[1])] = int(value)
        elif kind == "duration" and len(labels) == 3:
            series = totals.durations.setdefault((labels[0], labels[1]), Histogram())
            index = int(labels[2])
            if 0 <= index < len(series.counts):
                series.counts[index] += int(value)
        elif kind == "duration_sum" and len(labels) == 2:
            series = totals.durations.setdefault((labels[0], labels[1]), Histogram())
            series.total = float(value)
    return totals
