"""Probes and metrics: /healthz, /readyz, /metrics against a real Redis, worker and mask job."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path

from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.keys import Keys
from jobs.model import Operation, TaskRecord, TaskState
from jobs.redis_store import RedisTaskStore
from jobs.settings import Settings
from jobs.worker import in_process_worker
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from testkit.media import make_video
from testkit.sse import read_events
from tests.api import Client, download, follow_task, submit_mask, upload
from tests.metrics import scrape
from tests.oracle import judge_mask
from tests.pausing import frozen

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


async def wait_ready(client: Client, timeout: float = 20) -> dict[str, object]:
    """Poll /readyz until it answers 200 (a worker's first beat comes with its start-up)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get("/readyz")
        body = dict(await resp.json())
        if resp.status == 200:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_healthz_answers_ok(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_metrics_and_readiness_follow_a_mask_job(
    client: Client, settings: Settings, clip_odd: Path
) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["reason"] == "no_workers"
    assert body["status"] == "not_ready"

    video = await upload(client, clip_odd)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    stream = await client.get(f"/api/task-status/{task_id}/events")
    assert stream.status == 200
    text, before = await scrape(client)
    assert 'vidcorrect_tasks{operation="mask",state="PENDING"} 1.0' in text
    assert 'vidcorrect_tasks{operation="mask",state="SUCCESS"} 0.0' in text
    assert "vidcorrect_sse_clients 1.0" in text
    assert "vidcorrect_queue_depth 1.0" in text
    assert "vidcorrect_workers_alive 0.0" in text
    assert "vidcorrect_redis_up 1.0" in text

    async with in_process_worker(settings):
        assert await wait_ready(client) == {"status": "ready", "redis": "ok", "workers": 1}
        final = (await follow_task(client, task_id))[-1]
        assert final["state"] == "SUCCESS", final
        output = await download(client, final, settings.data_dir / "out.mp4")
        judge_mask(output, clip_odd, DEVICE_MASK, numbered=True)
        events = await read_events(stream)
        assert events[-1].event == "end"
        text, after = await scrape(client)
        worker_id = final["worker_id"]
        assert worker_id.startswith(f"{socket.gethostname()}:")

    frames = video["frame_count"]
    print("\n".join(line for line in text.splitlines() if line.startswith("vidcorrect_")))
    assert 'vidcorrect_tasks{operation="mask",state="PENDING"} 0.0' in text
    assert 'vidcorrect_tasks{operation="mask",state="SUCCESS"} 1.0' in text
    assert 'vidcorrect_job_duration_seconds_count{operation="mask",state="SUCCESS"} 1.0' in text
    assert (
        'vidcorrect_job_duration_seconds_bucket{le="+Inf",operation="mask",state="SUCCESS"} 1.0'
        in text
    )
    duration = after['vidcorrect_job_duration_seconds_sum{operation="mask",state="SUCCESS"}']
    assert 0 < duration <= final["result"]["processing_time"] + 1
    assert after['vidcorrect_frames_processed_total{operation="mask",stage="encode"}'] == frames
    # The output is checked while it is encoded: no separate stage counts its frames again.
    assert not any('stage="verify"' in name for name in after)
    assert "vidcorrect_sse_clients 0.0" in text
    assert "vidcorrect_queue_depth 0.0" in text
    assert "vidcorrect_workers_alive 1.0" in text
    assert after[f'vidcorrect_worker_jobs_running{{worker="{worker_id}"}}'] == 0
    assert after[f'vidcorrect_worker_heartbeat_age_seconds{{worker="{worker_id}"}}'] < 10
    assert "vidcorrect_processing_fps" in after
    submitted = (
        'vidcorrect_http_requests_total{method="POST",route="/api/video-apply-mask/{video_id}/",'
        'status="202"} 1.0'
    )
    assert submitted in text
    assert before["vidcorrect_sse_clients"] == 1

    # A worker that stops cleanly is no longer counted.
    _, stopped = await scrape(client)
    assert stopped["vidcorrect_workers_alive"] == 0
    assert (await client.get("/readyz")).status == 503


async def test_readyz_and_metrics_when_redis_is_away(
    aiohttp_client: AiohttpClient, tmp_path: Path, settings: Settings
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", persist=False)
    redis.start()
    try:
        client = await aiohttp_client(create_app(replace(settings, redis_url=redis.url)))
    finally:
        redis.stop()
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["reason"] == "redis_unreachable"
    assert "Redis" in body["message"]
    assert (await client.get("/healthz")).status == 200
    text, samples = await scrape(client)
    assert "vidcorrect_redis_up 0.0" in text
    assert "vidcorrect_tasks" not in samples
    assert "vidcorrect_http_requests_total" in text


async def test_task_counts_are_exact_from_existing_history_on(redis_url: str) -> None:
    """Tasks that existed before the first count are counted once; later changes move them."""
    redis = Redis.from_url(redis_url)
    records = RedisTaskStore(redis, Keys(f"vctest-{uuid.uuid4().hex[:10]}"))
    try:
        old = [TaskRecord(uuid.uuid4().hex, Operation.MASK, 1, {}) for _ in range(3)]
        for task in old:
            await records.create_task(task)
        await records.update_task(old[0], state=TaskState.SUCCESS)
        counts = await records.task_counts()
        assert counts == {("mask", "PENDING"): 2, ("mask", "SUCCESS"): 1}

        fresh = TaskRecord(uuid.uuid4().hex, Operation.ANALYZE, 1, {})
        await records.create_task(fresh)
        # Two parties racing over one task: only the transition that wins counts.
        pending = frozenset({TaskState.PENDING})
        won = await asyncio.gather(
            records.transition(old[1].task_id, pending, state=TaskState.STARTED),
            records.transition(old[1].task_id, pending, state=TaskState.REVOKED),
        )
        assert sum(result is not None for result in won) == 1
        await records.update_task(fresh, progress=5)  # no state change: no count change
        await records.delete_task(await records.get_task(old[0].task_id))
        counts = await records.task_counts()
        winner = next(result for result in won if result is not None).state
        assert counts[("mask", "PENDING")] == 1
        assert counts[("mask", str(winner))] == 1
        assert counts[("mask", "SUCCESS")] == 0
        assert counts[("analyze", "PENDING")] == 1
        assert sum(counts.values()) == 3
    finally:
        await redis.aclose()


async def test_readyz_counts_only_fresh_workers(client: Client, settings: Settings) -> None:
    redis = Redis.from_url(str(settings.redis_url))
    try:
        workers = settings.keys.workers
        await redis.zadd(workers, {"gone:1:aa": time.time() - settings.heartbeat_timeout - 1})
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["reason"] == "no_workers"
        text, _ = await scrape(client)
        assert 'vidcorrect_worker_heartbeat_age_seconds{worker="gone:1:aa"}' in text
        assert "vidcorrect_workers_alive 0.0" in text
    finally:
        await redis.aclose()


async def test_running_job_shows_in_fps_and_a_cancelled_run_in_the_histogram(
    client: Client, settings: Settings, media_dir: Path
) -> None:
    clip = make_video(media_dir / "monitoring-8s.mp4", width=1280, height=720, seconds=8.0)
    video = await upload(client, clip)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    # Beats every second (heartbeat_timeout / 3); the job is held stopped, and let go in short
    # steps (a tenth of the time) until a beat has carried its rate, so it is mid-job then.
    busy = replace(settings, heartbeat_timeout=3)
    async with in_process_worker(busy), frozen(settings.data_dir, video["id"]) as frames:
        samples: dict[str, float] = {}

        async def rate_shown() -> bool:
            nonlocal samples
            _, samples = await scrape(client)
            return samples.get("vidcorrect_processing_fps", 0) > 0

        await frames.run_until(rate_shown, step=0.02, rest=0.2)
        assert samples["vidcorrect_processing_fps"] > 0, samples
        assert samples["vidcorrect_jobs_running"] == 1
        running = [v for k, v in samples.items() if k.startswith("vidcorrect_worker_jobs_running")]
        assert running == [1]
        assert samples['vidcorrect_tasks{operation="mask",state="PROGRESS"}'] == 1
        assert (await client.post(f"/api/task-status/{task_id}/cancel/")).status == 202
        deadline = time.monotonic() + 10
        while (await (await client.get(f"/api/task-status/{task_id}/")).json())["state"] != (
            "REVOKED"
        ):
            assert time.monotonic() < deadline, "the cancel never took"
            await asyncio.sleep(0.05)
        text, samples = await scrape(client)
    assert 'vidcorrect_job_duration_seconds_count{operation="mask",state="REVOKED"} 1.0' in text
    assert 'vidcorrect_tasks{operation="mask",state="REVOKED"} 1.0' in text
    assert 'vidcorrect_tasks{operation="mask",state="PROGRESS"} 0.0' in text
    assert (
        0
        < samples['vidcorrect_frames_processed_total{operation="mask",stage="encode"}']
        < (video["frame_count"])
    )


async def test_metrics_show_redis_memory_the_history_and_the_webhook_outbox(
    client: Client, settings: Settings
) -> None:
    """The history's size (records) and Redis's memory follow the records stored; a task that
    ends with a callback_url shows in the outbox until a worker delivers it."""
    _, before = await scrape(client)
    assert before["vidcorrect_history_keys"] == 0
    assert before["vidcorrect_redis_memory_bytes"] > 0
    assert before["vidcorrect_webhooks_pending"] == 0
    redis = Redis.from_url(str(settings.redis_url))
    try:
        assert before["vidcorrect_redis_maxmemory_bytes"] == int(
            (await redis.config_get("maxmemory"))["maxmemory"]
        )
        records = RedisTaskStore(redis, settings.keys)
        stored = 1000
        for i in range(stored):
            task = TaskRecord(uuid.uuid4().hex, Operation.ANALYZE, 1, {"sample_every": i + 1})
            await records.create_task(task)
            await records.update_task(task, state=TaskState.SUCCESS, result={"frames": i})
        hooked = TaskRecord(
            uuid.uuid4().hex, Operation.MASK, 1, {}, callback_url="http://127.0.0.1:9/hook"
        )
        await records.create_task(hooked)
        await records.update_task(hooked, state=TaskState.FAILURE)
        ours = [key async for key in redis.scan_iter(match=f"{settings.keys.prefix}:*")]
        dbsize = await redis.dbsize()
    finally:
        await redis.aclose()
    _, after = await scrape(client)
    assert after["vidcorrect_history_keys"] == stored + 1
    assert after["vidcorrect_webhooks_pending"] == 1
    # Each record is a hash of some hundred bytes, plus its event log and index entries.
    assert after["vidcorrect_redis_memory_bytes"] - before["vidcorrect_redis_memory_bytes"] > (
        stored * 200
    )
    assert after["vidcorrect_redis_keys"] >= len(ours) > 2 * stored
    assert after["vidcorrect_redis_keys"] <= dbsize + 10
