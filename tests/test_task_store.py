"""Both task stores behave the same through the TaskStore interface: the same scenario runs on
the Redis store (a real Redis) and on the degraded mode's memory store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs.errors import InvalidCursor, NotFound
from jobs.event_hub import EventHub
from jobs.keys import Keys
from jobs.memory_store import MemoryTaskStore
from jobs.model import WAITING, Operation, TaskRecord, TaskState, VideoRecord
from jobs.redis_store import RedisTaskStore
from jobs.storage import Storage
from jobs.task_pages import TaskQuery
from jobs.task_store import TaskEvent, TaskStore

VIDEO = VideoRecord(
    id=1,
    filename="a.mp4",
    stored_name="videos/1/original.mp4",
    size_bytes=10,
    width=64,
    height=48,
    fps=25.0,
    frame_count=50,
    duration=2.0,
    codec="h264",
    pix_fmt="yuv420p",
    has_audio=False,
    audio_codec=None,
    created_at="2026-01-01T00:00:00.000Z",
)


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[TaskStore]:
    storage = Storage(tmp_path)
    storage.ensure()
    storage.video_sidecar(VIDEO.id).parent.mkdir()  # as the upload of the original does
    await asyncio.to_thread(storage.save_video, VIDEO)
    if request.param == "memory":
        yield MemoryTaskStore(storage)
        return
    redis = Redis.from_url(redis_url)
    keys = Keys(f"vctest-{uuid.uuid4().hex[:10]}")
    hub = EventHub(redis, keys, Redis.from_url(redis_url, single_connection_client=True))
    hub.start()
    store = RedisTaskStore(redis, keys, hub)
    await store.save_video(VIDEO)
    try:
        yield store
    finally:
        await hub.stop()
        await redis.aclose()


def task(task_id: str, operation: Operation = Operation.MASK, video_id: int = 1) -> TaskRecord:
    return TaskRecord(task_id=task_id, operation=operation, video_id=video_id, params={})


async def test_records_transitions_and_cancel_flags(store: TaskStore) -> None:
    assert await store.get_video(1) == VIDEO
    first = task("t1")
    await store.create_task(first)
    assert await store.get_task("t1") == first
    with pytest.raises(NotFound):
        await store.get_task("nope")
    with pytest.raises(ValueError, match="not task fields"):
        await store.update_task(first, colour="red")
    updated = await store.update_task(first, progress=7, result={"output_file": "o.mp4"})
    assert await store.get_task("t1") == updated
    started = await store.transition("t1", WAITING, state=TaskState.STARTED)
    assert started is not None
    assert started.state is TaskState.STARTED
    assert await store.transition("t1", WAITING, state=TaskState.REVOKED) is None
    assert not await store.cancel_requested("t1")
    await store.request_cancel("t1")
    assert await store.cancel_requested("t1")
    await store.heartbeat("t1")
    await store.not_running("t1")
    assert not await store.event_log_expired(await store.get_task("t1"))


async def test_listing_pages_newest_first_with_filters_and_counts(store: TaskStore) -> None:
    made = [
        task("a", Operation.MASK, 1),
        task("b", Operation.ANALYZE, 1),
        task("c", Operation.MASK, 2),
        task("d", Operation.MASK, 1),
        task("e", Operation.MASK, 1),
    ]
    for n, record in enumerate(made):
        await store.create_task(record, created=1000.0 + min(n, 3))  # d and e: the same time
    await store.update_task(made[0], state=TaskState.SUCCESS)

    async def pages(limit: int, **filters: Any) -> list[list[str]]:
        found: list[list[str]] = []
        cursor = None
        while True:
            tasks, cursor = await store.list_tasks(TaskQuery(limit=limit, cursor=cursor, **filters))
            found.append([t.task_id for t in tasks])
            if cursor is None:
                return found

    assert await pages(2) == [["e", "d"], ["c", "b"], ["a"]]
    assert await pages(1, video_id=1, operation=Operation.MASK) == [["e"], ["d"], ["a"], []]
    assert await pages(50, state=TaskState.SUCCESS) == [["a"]]
    with pytest.raises(InvalidCursor):
        await store.list_tasks(TaskQuery(cursor="yesterday"))
    counts = {k: v for k, v in (await store.task_counts()).items() if v}
    assert counts == {("mask", "PENDING"): 3, ("mask", "SUCCESS"): 1, ("analyze", "PENDING"): 1}


async def test_following_resumes_and_always_ends(store: TaskStore) -> None:
    record = task("f")
    await store.create_task(record)

    async def follow(after: str | None, count: int) -> list[TaskEvent]:
        got: list[TaskEvent] = []
        async with asyncio.timeout(10), store.follow("f", after) as events:
            async for event in events:
                got.append(event)
                if len(got) == count or event.is_end:
                    return got
        return got

    first = await follow(None, 1)
    assert [(e.event, e.task) for e in first] == [("progress", record)]
    running = await store.update_task(record, state=TaskState.PROGRESS, progress=50)
    done = await store.update_task(running, state=TaskState.SUCCESS, progress=100)
    rest = await follow(first[0].id, 5)
    assert [(e.event, e.task) for e in rest] == [("progress", running), ("end", done)]
    assert json.loads(rest[-1].data)["state"] == "SUCCESS"
    assert [(e.id, e.event) for e in await follow(rest[-1].id, 5)] == [(rest[-1].id, "end")]
