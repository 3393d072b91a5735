"""Publishing overhead and SSE fan-out latency of one running mask job, in one process.

    .venv/bin/python bench/live_progress.py [--clients 500 --seconds 20]

Starts the service in this process (embedded Redis, in-process worker), connects ``--clients``
SSE clients to one task, runs a 1080p mask, and reports:

- publishing: how many state changes the job wrote and the summed time of those writes
  (each a Redis transaction on the worker's event loop) against the job's processing time;
- delivery latency per event and client: the client's receive time minus the event's Redis
  stream id, which is the Redis server's clock when the worker wrote it (same machine).

Clients, server and worker share one event loop and two cores here, so the latency is an upper
bound of what separate processes would see.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service import follow_latencies, running_service, submit_device_mask, upload
from jobs.redis_store import RedisTaskStore
from testkit.media import make_video


async def run(clients: int, seconds: float) -> None:
    writes: list[float] = []
    original = RedisTaskStore.update_task

    async def timed_update(self: RedisTaskStore, task: object, **changes: object) -> object:
        started = time.perf_counter()
        try:
            return await original(self, task, **changes)  # type: ignore[arg-type]
        finally:
            writes.append(time.perf_counter() - started)

    RedisTaskStore.update_task = timed_update  # type: ignore[assignment,method-assign]
    with tempfile.TemporaryDirectory(prefix="vidcorrect-bench-") as tmp:
        work = Path(tmp)
        clip = await asyncio.to_thread(
            make_video, work / "clip.mp4", width=1920, height=1080, seconds=seconds
        )
        async with (
            running_service(work / "data") as base,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        ):
            video_id = await upload(session, base, clip)
            task_id = await submit_device_mask(session, base, video_id)
            url = f"{base}/api/task-status/{task_id}/events"
            streams = [await session.get(url) for _ in range(clients)]
            latencies: list[float] = []
            counts = await asyncio.gather(*(follow_latencies(s, latencies) for s in streams))
            async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
                status = await resp.json()
    processing = status["result"]["processing_time"]
    latencies.sort()
    print(f"\n{clients} SSE clients, {seconds:g} s 1080p mask, processing {processing:.2f} s\n")
    print("| figure | value |\n|---|---|")
    print(f"| state changes written | {len(writes)} |")
    print(f"| time in those writes | {sum(writes) * 1000:.1f} ms |")
    print(f"| publishing / processing time | {sum(writes) / processing * 100:.2f} % |")
    if latencies:  # always, with at least one client
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        print(f"| events per client (min/max) | {min(counts)}/{max(counts)} |")
        print(f"| delivery latency p50 | {statistics.median(latencies):.0f} ms |")
        print(f"| delivery latency p95 | {p95:.0f} ms |")
        print(f"| delivery latency max | {latencies[-1]:.0f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.clients < 1:
        parser.error("--clients must be at least 1 (the clients are what waits for the job)")
    asyncio.run(run(args.clients, args.seconds))


if __name__ == "__main__":
    main()
