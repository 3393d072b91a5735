"""Task history: listing with filters and paging, per-video tasks, retention, and the ETA."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from arq.connections import ArqRedis, create_pool

from jobs.history import prune_history
from jobs.model import Operation, TaskRecord, TaskState
from jobs.progress import FrameProgress
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.task_pages import TaskQuery
from jobs.worker import shutdown, startup
from tests.api import Client, expect_error, submit_mask, upload


def mask(n: int) -> dict[str, object]:
    """The n-th of several different masks (identical submissions would be one task)."""
    return {"mask_type": "custom", "roi": {"x": n, "y": 0, "width": 100, "height": 100}}


async def list_all(client: Client, query: str, limit: int) -> list[str]:
    """Page through /api/tasks/ and return the task ids in order."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(50):
        url = f"/api/tasks/?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(url)).json()
        assert len(body["tasks"]) <= limit
        ids += [t["task_id"] for t in body["tasks"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("paging did not end")


async def test_tasks_newest_first_with_filters_and_paging(client: Client, clip_720p: Path) -> None:
    first = await upload(client, clip_720p)
    second = await upload(client, clip_720p)
    submitted = []
    for n, video in enumerate((first, second, first, second, first)):
        submitted.append(await submit_mask(client, video["id"], mask(n)))
    newest_first = submitted[::-1]

    assert await list_all(client, "", limit=2) == newest_first
    assert await list_all(client, "", limit=500) == newest_first
    assert await list_all(client, f"video_id={first['id']}", limit=2) == newest_first[0::2]
    assert await list_all(client, "state=pending&operation=mask", limit=3) == newest_first
    assert await list_all(client, "state=SUCCESS", limit=3) == []

    body = await (await client.get(f"/api/videos/{second['id']}/")).json()
    assert [t["task_id"] for t in body["tasks"]] == newest_first[1::2]
    assert body["outputs"] == []


async def test_paging_is_stable_while_tasks_are_added(client: Client, clip_720p: Path) -> None:
    video = await upload(client, clip_720p)
    old = [await submit_mask(client, video["id"], mask(n)) for n in range(4)]
    page = await (await client.get("/api/tasks/?limit=2")).json()
    await submit_mask(client, video["id"], mask(4))  # arrives between two pages
    rest = await (await client.get(f"/api/tasks/?limit=10&cursor={page['next_cursor']}")).json()
    seen = [t["task_id"] for t in page["tasks"] + rest["tasks"]]
    assert seen == old[::-1]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("video_id=-3", "video_id"),
        ("state=DONE", "PENDING"),
        ("operation=paint", "mask"),
        ("cursor=garbage", "cursor"),
    ],
)
async def test_bad_history_queries_are_400(client: Client, query: str, words: str) -> None:
    code = "invalid_cursor" if query.startswith("cursor=") else "invalid_request"
    message = await expect_error(await client.get(f"/api/tasks/?{query}"), 400, code)
    assert words in message


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(settings.redis_settings())
    yield redis
    await redis.aclose()


async def test_retention_deletes_old_finished_tasks_and_their_outputs(
    settings: Settings, pool: ArqRedis
) -> None:
    settings = replace(settings, task_retention_days=7)
    records = RedisTaskStore(pool, settings.keys)
    ctx = {"settings": settings, "redis": pool}
    await startup(ctx)
    try:
        old = time.time() - 8 * 86400
        outputs = settings.data_dir / "outputs"

        async def make(task_id: str, created: float, state: TaskState) -> TaskRecord:
            task = TaskRecord(task_id=task_id, operation=Operation.MASK, video_id=1, params={})
            await records.create_task(task, created=created)
            result = {"output_file": f"outputs/{task_id}.mp4"}
            (outputs / f"{task_id}.mp4").write_bytes(b"video")
            return await records.update_task(task, state=state, result=result)

        await make("old-done", old, TaskState.SUCCESS)
        await make("old-failed", old, TaskState.FAILURE)
        await make("old-running", old, TaskState.PROGRESS)
        await make("new-done", time.time(), TaskState.SUCCESS)

        assert await prune_history(ctx) == 2
        tasks, _ = await records.list_tasks(TaskQuery())
        assert sorted(t.task_id for t in tasks) == ["new-done", "old-running"]
        assert sorted(p.name for p in outputs.iterdir()) == ["new-done.mp4", "old-running.mp4"]
        assert await pool.exists(settings.keys.task_events("old-done")) == 0
    finally:
        await shutdown(ctx)


async def test_default_retention_keeps_everything(settings: Settings, pool: ArqRedis) -> None:
    records = RedisTaskStore(pool, settings.keys)
    ctx = {"settings": settings, "redis": pool}
    await startup(ctx)
    try:
        task = TaskRecord(task_id="ancient", operation=Operation.MASK, video_id=1, params={})
        await records.create_task(task, created=0.0)
        await records.update_task(task, state=TaskState.SUCCESS)
        assert await prune_history(ctx) == 0
        assert (await records.get_task("ancient")).state is TaskState.SUCCESS
    finally:
        await shutdown(ctx)


def test_eta_waits_for_a_few_seconds_then_follows_the_smoothed_rate() -> None:
    now = [100.0]
    progress = FrameProgress(total=1000, clock=lambda: now[0])
    assert progress.eta_seconds() is None
    progress(1)
    for second in range(1, 3):  # 50 fps for two seconds: not enough measured yet
        now[0] = 100.0 + second
        progress(second * 50)
        progress.measure()
    assert progress.rate == pytest.approx(50, rel=0.05)
    assert progress.eta_seconds() is None
    now[0] = 103.0
    progress(150)
    progress.measure()
    assert progress.eta_seconds() == pytest.approx(850 / 50, rel=0.05)
    for second in range(4, 30):  # the rate doubles: the estimate follows within seconds
        now[0] = 100.0 + second
        progress(150 + (second - 3) * 100)
        progress.measure()
    assert progress.rate == pytest.approx(100, rel=0.01)
