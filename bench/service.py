"""The whole service in the benchmark's process: embedded Redis, in-process worker, HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from jobs.settings import Settings
from server.app import create_app


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
