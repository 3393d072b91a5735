"""Worker liveness: every worker says it is alive every few seconds, busy or idle.

A task's heartbeat (``P:running``) only beats while a job runs, so it cannot tell an idle worker
from none. Each worker (a ``vidcorrect worker`` process, or the server's in-process worker in
the embedded mode) therefore beats its own entry (:attr:`Keys.workers`, :meth:`Keys.worker`):

    P:workers              sorted set: worker id -> last beat (epoch seconds)
    P:worker:<id>          hash: jobs (running now), max_jobs, fps (its running stages together);
                           expires by itself when the worker stops beating

A worker counts as alive while its last beat is younger than ``heartbeat_timeout`` (the same
limit after which its tasks are retried). ``python -m jobs.liveness`` exits 0 when a worker on
this host is alive: the container health check of a worker.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.errors import ConfigError
from jobs.keys import Keys
from jobs.settings import Settings
from jobs.stats import JobStats

log = structlog.get_logger("vidcorrect.liveness")

#: Entries of workers silent for this long are dropped from ``P:workers`` (seconds).
FORGET_AFTER = 3600


def new_worker_id() -> str:
    """A worker id: host, process and a random tag (a pid may be reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def beat_interval(settings: Settings) -> float:
    """Seconds between beats: a few per ``heartbeat_timeout``, at most 5."""
    return max(1.0, min(5.0, settings.heartbeat_timeout / 3))


class WorkerBeat:
    """Beats one worker's liveness entry until stopped."""

    def __init__(self, redis: Redis, settings: Settings, worker_id: str, stats: JobStats) -> None:
        self._redis = redis
        self._settings = settings
        self._keys = settings.keys
        self.worker_id = worker_id
        self._stats = stats

    async def beat(self) -> None:
        """Say this worker is alive now, with what it is doing."""
        now = time.time()
        info = self._keys.worker(self.worker_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.workers, {self.worker_id: now})
            pipe.zremrangebyscore(self._keys.workers, "-inf", now - FORGET_AFTER)
            pipe.hset(
                info,
                mapping={
                    "jobs": self._stats.jobs_running,
                    "max_jobs": self._settings.max_jobs,
                    "fps": round(self._stats.current_fps(), 2),
                },
            )
            pipe.expire(info, FORGET_AFTER)
            await pipe.execute()

    async def run(self) -> None:
        """Beat every :func:`beat_interval` seconds until cancelled; Redis outages are waited
        out (the worker is not alive to others meanwhile, which is the truth)."""
        interval = beat_interval(self._settings)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
            except RedisError as error:
                log.warning("worker beat could not reach redis", error=str(error))

    async def forget(self) -> None:
        """Remove this worker's entry (a clean stop): it stops counting at once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.workers, self.worker_id)
            pipe.delete(self._keys.worker(self.worker_id))
            await pipe.execute()


@dataclass(frozen=True)
class WorkerState:
    """One worker as its beats describe it."""

    worker_id: str
    last_beat: float  # epoch seconds
    jobs: int
    max_jobs: int
    fps: float

    def age(self, now: float) -> float:
        """Seconds since its last beat."""
        return max(0.0, now - self.last_beat)


async def read_workers(redis: Redis, keys: Keys) -> list[WorkerState]:
    """Every worker that beat within :data:`FORGET_AFTER`, alive or not."""
    rows = await redis.zrangebyscore(
        keys.workers, time.time() - FORGET_AFTER, "+inf", withscores=True
    )
    if not rows:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for member, _ in rows:
            pipe.hgetall(keys.worker(member.decode()))
        infos: list[dict[bytes, bytes]] = await pipe.execute()
    workers = []
    for (member, score), info in zip(rows, infos, strict=True):
        workers.append(
            WorkerState(
                worker_id=member.decode(),
                last_beat=float(score),
                jobs=int(info.get(b"jobs", 0)),
                max_jobs=int(info.get(b"max_jobs", 0)),
                fps=float(info.get(b"fps", 0.0)),
            )
        )
    return workers


async def count_alive(redis: Redis, settings: Settings) -> int:
    """Workers whose last beat is younger than ``heartbeat_timeout``."""
    since = time.time() - settings.heartbeat_timeout
    return int(await redis.zcount(settings.keys.workers, since, "+inf"))


async def alive_on_host(redis: Redis, settings: Settings, host: str) -> bool:
    """Whether a worker on ``host`` is alive (its ids start with the host name)."""
    since = time.time() - settings.heartbeat_timeout
    rows = await redis.zrangebyscore(settings.keys.workers, since, "+inf")
    return any(row.decode().startswith(f"{host}:") for row in rows)


async def _check_this_host(settings: Settings) -> bool:
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        return await alive_on_host(redis, settings, socket.gethostname())
    finally:
        await redis.aclose()


def main() -> int:
    """Exit 0 if a worker on this host is alive, 1 if not, 2 if it cannot be told."""
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"vidcorrect liveness: {error.message}", file=sys.stderr)
        return 2
    if settings.redis_url is None:
        print("vidcorrect liveness: REDIS_URL is not set", file=sys.stderr)
        return 2
    try:
        alive = asyncio.run(_check_this_host(settings))
    except (RedisError, OSError) as error:
        print(f"vidcorrect liveness: redis unreachable ({error})", file=sys.stderr)
        return 1
    if not alive:
        print("vidcorrect liveness: no worker on this host beat recently", file=sys.stderr)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
