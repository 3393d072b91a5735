"""How much Redis memory the task history takes per finished task, to size Redis.

    .venv/bin/python -m bench.redis_memory [--tasks 20000]

Runs one real task of each operation through the whole service (embedded Redis, in-process
worker, HTTP) on a small generated clip, then stores ``--tasks`` copies of those finished
records (new ids, spread evenly over the four operations) the way the service stores them, and
reads Redis's ``used_memory`` before and after: bytes per task while its event log is kept (an
hour after its end, here one entry each) and once it has expired (the history as it stays).
The real tasks' own event logs are measured too (``MEMORY USAGE``): they grow with a job's
progress events (at most 1000 entries) and are gone an hour after its end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from jobs.logs import configure_logging
from jobs.redis_store import LIVE_EVENTS_KEPT, RedisTaskStore
from jobs.settings import Settings
from jobs.task_store import event_entry
from jobs.worker import in_process_worker
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from testkit.media import make_video

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}
SUBMISSIONS = {
    "mask": ("video-apply-mask", DEVICE_MASK),
    "remove_frames": ("video-remove-frames", {"frame_ranges": "10-14"}),
    "analyze": ("video-analyze", {}),
    "reprocess": ("video-reprocess", {**DEVICE_MASK, "remove_labels": ["blank"]}),
}


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def run_real_tasks(base: str, clip: Path) -> list[str]:
    """Upload ``clip``, run one task of each operation to SUCCESS; their ids."""
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("file", await asyncio.to_thread(clip.read_bytes), filename="clip.mp4")
        async with session.post(f"{base}/api/videos/", data=form) as resp:
            assert resp.status == 201, await resp.text()
            video_id = (await resp.json())["id"]
        task_ids = []
        for route, body in SUBMISSIONS.values():
            async with session.post(f"{base}/api/{route}/{video_id}/", json=body) as resp:
                assert resp.status == 202, await resp.text()
                task_ids.append((await resp.json())["task_id"])
        for task_id in task_ids:
            deadline = time.monotonic() + 300
            while True:
                async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
                    state = (await resp.json())["state"]
                if state in ("SUCCESS", "FAILURE", "REVOKED"):
                    assert state == "SUCCESS", task_id
                    break
                assert time.monotonic() < deadline, f"{task_id} did not end"
                await asyncio.sleep(0.1)
        return task_ids


async def measure(work: Path, copies: int) -> dict[str, Any]:
    clip = make_video(work / "clip.mp4", width=640, height=360, seconds=2.0, numbered=True)
    with EmbeddedRedis(work / "redis", persist=False) as embedded:
        settings = Settings(data_dir=work / "data", redis_url=embedded.url)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        redis = Redis.from_url(embedded.url)
        try:
            async with in_process_worker(settings):
                task_ids = await run_real_tasks(f"http://127.0.0.1:{port}", clip)
            store = RedisTaskStore(redis, settings.keys)
            real = [await store.get_task(task_id) for task_id in task_ids]
            record_bytes = {
                task.operation.value: int(
                    cast(int, await redis.memory_usage(settings.keys.task(task.task_id)))
                )
                for task in real
            }
            stream_bytes = {
                task.operation.value: int(
                    cast(int, await redis.memory_usage(settings.keys.task_events(task.task_id)))
                )
                for task in real
            }
            stream_entries = {
                task.operation.value: int(await redis.xlen(settings.keys.task_events(task.task_id)))
                for task in real
            }
            # A long job's log at its cap: the mask's end entry, LIVE_EVENTS_KEPT times.
            capped = settings.keys.task_events("capped")
            event, data = event_entry(real[0])
            for _ in range(LIVE_EVENTS_KEPT):
                await redis.xadd(capped, {"event": event, "data": data})
            capped_bytes = int(cast(int, await redis.memory_usage(capped)))
            await redis.delete(capped)
            before = await used_memory(redis)
            clones = []
            for i in range(copies):
                clone = replace(real[i % len(real)], task_id=uuid.uuid4().hex)
                clones.append(clone)
                await store.create_task(clone)
            with_events = await used_memory(redis)
            for start in range(0, len(clones), 500):
                await redis.delete(
                    *(settings.keys.task_events(c.task_id) for c in clones[start : start + 500])
                )
            history_only = await used_memory(redis)
        finally:
            await redis.aclose()
            await runner.cleanup()
    return {
        "copies": copies,
        "bytes_per_task_with_one_event": round((with_events - before) / copies),
        "bytes_per_task_in_history": round((history_only - before) / copies),
        "record_bytes_by_operation": record_bytes,
        "event_log_bytes_by_operation": stream_bytes,
        "event_log_entries_by_operation": stream_entries,
        f"event_log_bytes_at_{LIVE_EVENTS_KEPT}_entries": capped_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000, help="finished records to store")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory() as work:
        print(json.dumps(asyncio.run(measure(Path(work), args.tasks)), indent=2))


if __name__ == "__main__":
    main()
