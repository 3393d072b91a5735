"""The whole service in the benchmark's process: embedded Redis, in-process worker, HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from jobs.settings import Settings
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from testkit.sse import read_events

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_service(data_dir: Path) -> AsyncIterator[str]:
    """Serve on a free local port until exit; yields the base URL."""
    runner = web.AppRunner(create_app(Settings(data_dir=data_dir)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def upload(session: aiohttp.ClientSession, base: str, path: Path) -> int:
    """Upload a video; returns its id."""
    form = aiohttp.FormData()
    form.add_field("file", await asyncio.to_thread(path.read_bytes), filename=path.name)
    async with session.post(f"{base}/api/videos/", data=form) as resp:
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["id"])


@asynccontextmanager
async def service_process(
    work: Path, name: str, **env: str
) -> AsyncIterator[tuple[str, dict[str, str], int]]:
    """``vidcorrect serve`` in a process of its own, on a Redis of its own (so a worker process
    can join with the same environment). Yields the base URL, that environment and the pid."""
    with EmbeddedRedis(work / f"{name}-redis", persist=False) as redis:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        environ = {
            **os.environ,
            "REDIS_URL": redis.url,
            "VIDCORRECT_DATA_DIR": str(work / name),
            "VIDCORRECT_LOG_LEVEL": "warning",
            "VIDCORRECT_LOG_FORMAT": "json",
            **env,
        }
        server = spawn(environ, "serve", "--port", str(port))
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    try:
                        async with session.get(f"{base}/api/videos/") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.05)
            yield base, environ, server.pid
        finally:
            server.terminate()
            server.wait(10)


def spawn(environ: dict[str, str], *command: str) -> subprocess.Popen[bytes]:
    """A ``vidcorrect`` command (serve, worker) in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "vidcorrect", *command],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def submit_device_mask(session: aiohttp.ClientSession, base: str, video_id: int) -> str:
    """Queue an olympus_cv_1500 mask of the video; returns the task id."""
    async with session.post(
        f"{base}/api/video-apply-mask/{video_id}/",
        json={"mask_type": "device", "device_name": "olympus_cv_1500"},
    ) as resp:
        return str((await resp.json())["task_id"])


async def follow_latencies(stream: aiohttp.ClientResponse, latencies: list[float]) -> int:
    """Read an SSE stream to its end event, adding each event's delivery latency (ms: now minus
    the event's Redis stream id, the Redis clock when it was written). Returns the count."""
    count = 0
    while events := await read_events(stream, limit=1):
        event = events[0]
        assert event.id is not None
        latencies.append(time.time() * 1000 - int(event.id.split("-")[0]))
        count += 1
        if event.event == "end":
            break
    return count
