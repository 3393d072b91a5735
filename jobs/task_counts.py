"""How many tasks are in each state, per operation: counters kept in Redis with the records.

``P:stats:tasks`` (:attr:`Keys.task_counts`) is a hash of ``<operation>|<STATE>`` -> count.
Every write that changes a task's state (create, update, transition, delete in
:class:`jobs.redis_store.RedisTaskStore`) queues :func:`count_state_change` in the same MULTI,
where a Lua script reads the state stored at that moment, so the counts are exact whatever runs
concurrently. The counters start with :func:`read_task_counts`: the first reader (a
``/metrics`` scrape) counts the existing records once, atomically, and marks the hash; until
then the writes leave it alone. So a scrape never scans the tasks, except that once.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobs.keys import Keys

#: Field that marks the counters as started (the existing records were counted).
COUNTED = "_counted"

# KEYS: the task's hash, the counters. ARGV: the operation, the new state as stored (JSON), or
# "" when the task is being deleted. Runs before the write it accounts for, inside its MULTI.
_CHANGE = """
if redis.call('HEXISTS', KEYS[2], '_counted') == 0 then return 0 end
local old = redis.call('HGET', KEYS[1], 'state')
if old == ARGV[2] then return 0 end
if old then redis.call('HINCRBY', KEYS[2], ARGV[1] .. '|' .. cjson.decode(old), -1) end
if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[1] .. '|' .. cjson.decode(ARGV[2]), 1) end
return 1
"""

# KEYS: the counters, the index of all tasks. ARGV: the prefix of task keys ("P:task:").
# Counts every indexed task once, unless that was done already; atomic like any script.
_START = """
if redis.call('HSETNX', KEYS[1], '_counted', '1') == 0 then return -1 end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'operation', 'state')
  if v[1] and v[2] then
    redis.call('HINCRBY', KEYS[1], cjson.decode(v[1]) .. '|' .. cjson.decode(v[2]), 1)
  end
end
return #ids
"""


def count_state_change(
    pipe: Pipeline, keys: Keys, task_id: str, operation: str, new_state: str | None
) -> None:
    """Queue the count of a state change of task ``task_id`` (``new_state`` JSON-encoded as the
    record stores it; ``None``: the task is deleted). Call it before the write."""
    pipe.eval(_CHANGE, 2, keys.task(task_id), keys.task_counts, operation, new_state or "")


async def read_task_counts(redis: Redis, keys: Keys) -> dict[tuple[str, str], int]:
    """``{(operation, state): count}``, starting the counters first if nobody has (counting the
    tasks of the index of all tasks)."""
    key = keys.task_counts
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key))
    if COUNTED.encode() not in raw:
        await cast(Awaitable[int], redis.eval(_START, 2, key, keys.tasks(), keys.task("")))
        raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key))
    counts: dict[tuple[str, str], int] = {}
    for field, value in raw.items():
        operation, sep, state = field.decode().partition("|")
        if sep:
            counts[(operation, state)] = int(value)
    return counts
