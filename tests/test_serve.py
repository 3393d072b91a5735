"""The README's first command: ``vidcorrect serve`` with its embedded Redis and worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from testkit.media import make_video
from tests.oracle import judge_mask
from tests.served import Served

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


async def _json(resp: aiohttp.ClientResponse) -> Any:
    return await resp.json()


async def test_serve_masks_with_embedded_redis_and_keeps_history(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    clip = make_video(tmp_path / "clip.mp4", width=640, height=360, seconds=1.0, numbered=True)
    async with aiohttp.ClientSession() as session:
        served = Served(data_dir)
        try:
            await served.wait_ready(session, "/api/videos/")
            form = aiohttp.FormData()
            form.add_field("file", clip.read_bytes(), filename="clip.mp4")
            async with session.post(f"{served.base}/api/videos/", data=form) as resp:
                assert resp.status == 201
                video = await _json(resp)
            started = time.monotonic()
            async with session.post(
                f"{served.base}/api/video-apply-mask/{video['id']}/",
                json=DEVICE_MASK,
            ) as resp:
                assert resp.status == 202
                task_id = (await _json(resp))["task_id"]
            assert time.monotonic() - started < 1.0
            status: dict[str, Any] = {}
            for _ in range(600):
                async with session.get(f"{served.base}/api/task-status/{task_id}/") as resp:
                    status = await _json(resp)
                if status["state"] in ("SUCCESS", "FAILURE"):
                    break
                await asyncio.sleep(0.05)
            assert status["state"] == "SUCCESS", status
            async with session.get(f"{served.base}{status['result']['output_url']}") as resp:
                assert resp.status == 200
                (tmp_path / "out.mp4").write_bytes(await resp.read())
            judge_mask(tmp_path / "out.mp4", clip, DEVICE_MASK, numbered=True)
        finally:
            assert served.stop() == 0
        assert (data_dir / "redis" / "appendonlydir").is_dir() or (
            data_dir / "redis" / "appendonly.aof"
        ).is_file()

        # A restart on the same data dir finds the task again (Redis's append-only file).
        served = Served(data_dir)
        try:
            await served.wait_ready(session, "/api/videos/")
            async with session.get(f"{served.base}/api/task-status/{task_id}/") as resp:
                assert resp.status == 200
                again = await _json(resp)
            assert again["state"] == "SUCCESS"
            assert again["result"] == status["result"]
        finally:
            assert served.stop() == 0
