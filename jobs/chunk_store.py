"""A chunked task's state in Redis (keys: :mod:`jobs.keys`): its spec (what every chunk job
and the stitch need), its finished parts counted once each, each chunk's attempts, heartbeats
and progress, and the claims that make the stitch run once. Used by :mod:`jobs.chunked`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

from arq.constants import job_key_prefix
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobs.keys import Keys
from jobs.model import JsonDict

#: Seconds the stitch claims are kept (far longer than any task runs).
CLAIM_TTL = 86400
#: Milliseconds the progress publisher's lock lasts unless renewed.
PUBLISHER_TTL_MS = 3000

#: Count a finished part once: ``KEYS`` chunks hash, done set, progress hash, stitch claim,
#: pending list; ``ARGV`` index, part JSON, frames, total, claim TTL. Returns {finished parts,
#: 1 if this call completed the set and claimed the stitch, 1 if the part was new, the next
#: chunk to queue or -1}.
_FINISH = """
local added = redis.call('SADD', KEYS[2], ARGV[1])
local nxt = -1
if added == 1 then
  redis.call('HSET', KEYS[1], 'part:' .. ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  redis.call('HDEL', KEYS[3], 'rate:' .. ARGV[1], 'worker:' .. ARGV[1])
  local popped = redis.call('LPOP', KEYS[5])
  if popped then nxt = tonumber(popped) end
end
local count = redis.call('SCARD', KEYS[2])
local claimed = 0
if count >= tonumber(ARGV[4]) then
  if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[5]) then claimed = 1 end
end
return {count, claimed, added, nxt}
"""

#: Renew a lock held by ``ARGV[1]`` for ``ARGV[2]`` ms, or take it when free; 1 if held.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""

#: Release a lock if ``ARGV[1]`` holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

#: Raise the most frames published to ``ARGV[1]`` if higher; returns the most.
_MOST = """
local most = tonumber(redis.call('HGET', KEYS[1], 'most') or '0')
local now = tonumber(ARGV[1])
if now > most then redis.call('HSET', KEYS[1], 'most', now) return now end
return most
"""

#: Set the hash field ``ARGV[1]`` to the number ``ARGV[2]`` unless it holds a larger one.
_LATEST = """
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > held then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class Aggregate:
    """The progress of a chunked task over all its chunks."""

    frames: int  #: source frames done over all chunks (never less than published before)
    rate: float  #: frames per second of the running chunks together
    workers: int  #: distinct workers running its chunks now


class ChunkStore:
    """The chunk state of tasks, on one Redis pool."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self._finish = redis.register_script(_FINISH)
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)
        self._most = redis.register_script(_MOST)

    async def spec(self, task_id: str) -> JsonDict | None:
        """The task's spec (written at its hand-off), or None."""
        raw = await cast(
            Awaitable[bytes | None], self._redis.hget(self.keys.chunks(task_id), "spec")
        )
        return None if raw is None else cast(JsonDict, json.loads(raw))

    async def start(
        self, task_id: str, spec: JsonDict, queued: list[int], pending: list[int]
    ) -> None:
        """Write the spec of a hand-off, the chunks' first attempts and the queue of chunks
        not queued yet; register the task as chunked. Parts already finished for the same
        fingerprint stay (the caller dropped the state of another fingerprint)."""
        key = self.keys.chunks(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "spec", json.dumps(spec))
            for index in [*queued, *pending]:
                pipe.hset(key, f"attempts:{index}", "1")
            pipe.delete(self.keys.chunks_pending(task_id))
            if pending:
                pipe.rpush(self.keys.chunks_pending(task_id), *pending)
            pipe.zadd(self.keys.chunked, {task_id: time.time()})
            await pipe.execute()

    async def reset_progress(self, task_id: str, finished: dict[int, int]) -> None:
        """Progress of a new hand-off: the finished parts' frames, nothing running."""
        key = self.keys.chunks_progress(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, "most", str(sum(finished.values())))
            for index, frames in finished.items():
                pipe.hset(key, str(index), str(frames))
            await pipe.execute()

    async def drop(self, task_id: str) -> None:
        """Forget a task's chunk state (its parts' files are the caller's)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*self.keys.chunk_keys(task_id))
            pipe.zrem(self.keys.chunked, task_id)
            await pipe.execute()
        members = [
            m
            for m in await self._redis.zrange(self.keys.chunks_running, 0, -1)
            if m.decode().rpartition(":")[0] == task_id
        ]
        if members:
            await self._redis.zrem(self.keys.chunks_running, *members)

    async def chunked_tasks(self) -> list[str]:
        """The tasks handed off to chunk jobs whose state is still kept."""
        return [m.decode() for m in await self._redis.zrange(self.keys.chunked, 0, -1)]

    async def parts(self, task_id: str) -> dict[int, JsonDict]:
        """The finished parts' records by chunk index."""
        raw = await cast(
            Awaitable[dict[bytes, bytes]], self._redis.hgetall(self.keys.chunks(task_id))
        )
        return {
            int(name.decode().partition(":")[2]): cast(JsonDict, json.loads(value))
            for name, value in raw.items()
            if name.startswith(b"part:")
        }

    async def forget_part(self, task_id: str, index: int) -> None:
        """Count a part as not finished (its file is gone)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(self.keys.chunks_done(task_id), str(index))
            pipe.hdel(self.keys.chunks(task_id), f"part:{index}")
            await pipe.execute()

    async def is_done(self, task_id: str, index: int) -> bool:
        return bool(
            await cast(
                Awaitable[int], self._redis.sismember(self.keys.chunks_done(task_id), str(index))
            )
        )

    async def attempt(self, task_id: str, index: int) -> int:
        """The current attempt of a chunk (1 for its first run)."""
        raw = await cast(
            Awaitable[bytes | None],
            self._redis.hget(self.keys.chunks(task_id), f"attempts:{index}"),
        )
        return int(raw or 1)

    async def next_attempt(self, task_id: str, index: int, since: float | None = None) -> int:
        """Count another attempt of a chunk whose run was lost or failed, and a resume of the
        task from ``since`` (epoch seconds; the lost chunk's last heartbeat, else now): the
        parts whose chunks started before it count as reused. Returns the new attempt."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.keys.chunks(task_id), f"attempts:{index}", 1)
            self._resume(pipe, task_id, time.time() if since is None else since)
            pipe.hset(self.keys.chunks_progress(task_id), str(index), "0")
            pipe.hdel(self.keys.chunks_progress(task_id), f"rate:{index}", f"worker:{index}")
            attempt, _, _, _ = await pipe.execute()
        return int(attempt)

    async def resumed_at(self, task_id: str) -> float:
        """When the task last resumed (epoch seconds; 0: never): a new attempt of the task, or
        the last heartbeat of a chunk it lost."""
        raw = await cast(
            Awaitable[bytes | None], self._redis.hget(self.keys.chunks(task_id), "resumed_at")
        )
        return float(raw or 0)

    async def resume(self, task_id: str, at: float) -> None:
        """Record a resume of the task at ``at`` (epoch seconds), unless a later one is."""
        async with self._redis.pipeline(transaction=True) as pipe:
            self._resume(pipe, task_id, at)
            await pipe.execute()

    def _resume(self, pipe: Pipeline, task_id: str, at: float) -> None:
        pipe.eval(_LATEST, 1, self.keys.chunks(task_id), "resumed_at", repr(at))

    async def finish(
        self, task_id: str, index: int, part: JsonDict, frames: int, total: int, attempt: int
    ) -> tuple[int, bool, bool, int | None]:
        """Record a finished part, counted once however often its chunk ran. Returns the
        finished parts, whether this call completed the set and claimed the stitch of task
        attempt ``attempt``, whether the part was new, and the chunk held back by the per-task
        limit that is now to be queued (taken off the pending list with a new part only)."""
        count, claimed, added, nxt = await self._finish(
            keys=[
                self.keys.chunks(task_id),
                self.keys.chunks_done(task_id),
                self.keys.chunks_progress(task_id),
                self.keys.stitch_claim(task_id, attempt),
                self.keys.chunks_pending(task_id),
            ],
            args=[index, json.dumps(part), frames, total, CLAIM_TTL],
        )
        return int(count), bool(claimed), bool(added), None if int(nxt) < 0 else int(nxt)

    async def finished_count(self, task_id: str) -> int:
        """How many distinct parts of the task are finished."""
        return int(await cast(Awaitable[int], self._redis.scard(self.keys.chunks_done(task_id))))

    async def unaccounted(self, task_id: str, indices: list[int]) -> list[tuple[int, int]]:
        """Of ``indices``, the chunks neither finished, nor running (heartbeat), nor held back
        by the per-task limit, with their current attempts."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smembers(self.keys.chunks_done(task_id))
            pipe.zrange(self.keys.chunks_running, 0, -1)
            pipe.lrange(self.keys.chunks_pending(task_id), 0, -1)
            pipe.hgetall(self.keys.chunks(task_id))
            done, running, pending, fields = await pipe.execute()
        busy = {int(m) for m in done} | {int(m) for m in pending}
        for member in running:
            owner, _, index = member.decode().rpartition(":")
            if owner == task_id:
                busy.add(int(index))
        return [
            (index, int(fields.get(f"attempts:{index}".encode(), b"1")))
            for index in indices
            if index not in busy
        ]

    async def jobs_exist(self, job_ids: list[str]) -> list[bool]:
        """Whether arq holds each job (queued, deferred or running)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(job_key_prefix + job_id)
            return [bool(found) for found in await pipe.execute()]

    async def task_running(self, task_id: str) -> bool:
        """Whether a run of the task itself (not a chunk) beats its heartbeat (``P:running``)."""
        return await self._redis.zscore(self.keys.running, task_id) is not None

    async def claim_stitching(self, task_id: str, attempt: int) -> bool:
        """Take the run of attempt ``attempt``'s stitch; False if a stitch job has it."""
        return bool(
            await self._redis.set(
                self.keys.stitching(task_id, attempt), b"1", nx=True, ex=CLAIM_TTL
            )
        )

    async def release_stitching(self, task_id: str, attempt: int) -> None:
        await self._redis.delete(self.keys.stitching(task_id, attempt))

    # -- running chunks: heartbeats and progress

    async def beat(self, task_id: str, index: int) -> None:
        await self._redis.zadd(self.keys.chunks_running, {f"{task_id}:{index}": time.time()})

    async def not_running(self, task_id: str, index: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.chunks_running, f"{task_id}:{index}")
            pipe.hdel(self.keys.chunks_progress(task_id), f"rate:{index}", f"worker:{index}")
            await pipe.execute()

    async def stale(self, older_than: float) -> list[tuple[str, int, float]]:
        """Running chunks whose last heartbeat is older than ``older_than`` (epoch seconds):
        task id, chunk index and that last heartbeat."""
        rows = await self._redis.zrangebyscore(
            self.keys.chunks_running, "-inf", older_than, withscores=True
        )
        found = []
        for row, beat in rows:
            task_id, _, index = row.decode().rpartition(":")
            found.append((task_id, int(index), float(beat)))
        return found

    async def forget_running(self, task_id: str, index: int) -> bool:
        """Take a chunk out of the running ones; False if another process did first."""
        return bool(await self._redis.zrem(self.keys.chunks_running, f"{task_id}:{index}"))

    async def report(
        self, task_id: str, index: int, frames: int, rate: float | None, worker_id: str
    ) -> None:
        """A running chunk's frames done, rate and worker."""
        mapping: dict[str, Any] = {str(index): frames, f"worker:{index}": worker_id}
        if rate:
            mapping[f"rate:{index}"] = round(rate, 2)
        await cast(
            Awaitable[int],
            self._redis.hset(self.keys.chunks_progress(task_id), mapping=mapping),
        )

    async def hold_publisher(self, task_id: str, holder: str) -> bool:
        """Whether ``holder`` publishes the task's progress (taking the role when free)."""
        return bool(
            await self._hold(
                keys=[self.keys.chunks_publisher(task_id)], args=[holder, PUBLISHER_TTL_MS]
            )
        )

    async def release_publisher(self, task_id: str, holder: str) -> None:
        await self._release(keys=[self.keys.chunks_publisher(task_id)], args=[holder])

    async def aggregate(self, task_id: str) -> Aggregate:
        """The task's progress over all chunks; its frames never go down."""
        raw = await cast(
            Awaitable[dict[bytes, bytes]],
            self._redis.hgetall(self.keys.chunks_progress(task_id)),
        )
        frames, rate, workers = 0, 0.0, set()
        for name, value in raw.items():
            field = name.decode()
            if field.isdigit():
                frames += int(value)
            elif field.startswith("rate:"):
                rate += float(value)
            elif field.startswith("worker:"):
                workers.add(value)
        most = int(await self._most(keys=[self.keys.chunks_progress(task_id)], args=[frames]))
        return Aggregate(frames=most, rate=rate, workers=len(workers))
