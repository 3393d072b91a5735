"""Patient media is private to the service's user: every folder in the data dir is 0700 and
every file 0600, whatever the umask the service was started with."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp

from jobs.settings import Settings
from testkit.media import make_video
from tests.processes import SpawnWorker
from tests.served import Served

MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


def loose_modes(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that its group or others may use, or that
    is not 0700 (folders) or 0600 (files)."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode & 0o077 or (path.is_dir() and mode != wanted):
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


async def _mask_and_download(session: aiohttp.ClientSession, base: str, clip: Path) -> None:
    form = aiohttp.FormData()
    form.add_field("file", clip.read_bytes(), filename="clip.mp4", content_type="video/mp4")
    async with session.post(f"{base}/api/videos/", data=form) as resp:
        assert resp.status == 201, await resp.text()
        video = await resp.json()
    async with session.post(f"{base}/api/video-apply-mask/{video['id']}/", json=MASK) as resp:
        assert resp.status == 202, await resp.text()
        task_id = (await resp.json())["task_id"]
    status: dict[str, Any] = {}
    for _ in range(1200):
        async with session.get(f"{base}/api/task-status/{task_id}/") as resp:
            status = await resp.json()
        if status["state"] in ("SUCCESS", "FAILURE"):
            break
        await asyncio.sleep(0.05)
    assert status["state"] == "SUCCESS", status
    async with session.get(f"{base}{status['result']['output_url']}") as resp:
        assert resp.status == 200


async def test_embedded_serve_keeps_everything_private(tmp_path: Path) -> None:
    """``vidcorrect serve`` started with umask 022, on a data dir an earlier version left
    0755: the folders are tightened, and the upload, the output and Redis's files are 0600."""
    clip = make_video(tmp_path / "clip.mp4", width=320, height=180, seconds=0.6)
    data_dir = tmp_path / "data"
    (data_dir / "videos").mkdir(parents=True)
    for folder in (data_dir, data_dir / "videos"):
        folder.chmod(0o755)
    previous = os.umask(0o022)  # what the service inherits; it must not rely on it
    try:
        served = Served(data_dir)
    finally:
        os.umask(previous)
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session, "/api/videos/")
            await _mask_and_download(session, served.base, clip)
    finally:
        assert served.stop() == 0
    assert list((data_dir / "outputs").glob("*.mp4"))
    assert list((data_dir / "videos").glob("*/original.*"))
    assert list((data_dir / "redis").rglob("*.aof")) or list((data_dir / "redis").rglob("*aof*"))
    assert loose_modes(data_dir) == []


async def test_a_separate_worker_process_writes_private_outputs(
    tmp_path: Path, settings: Settings, spawn_worker: SpawnWorker
) -> None:
    assert settings.redis_url is not None
    clip = make_video(tmp_path / "clip.mp4", width=320, height=180, seconds=0.6)
    previous = os.umask(0o022)
    try:
        served = Served(
            settings.data_dir,
            {"REDIS_URL": settings.redis_url, "VIDCORRECT_KEY_PREFIX": settings.key_prefix},
        )
        spawn_worker()
    finally:
        os.umask(previous)
    try:
        async with aiohttp.ClientSession() as session:
            await served.wait_ready(session, "/api/videos/")
            await _mask_and_download(session, served.base, clip)
    finally:
        assert served.stop() == 0
    assert list((settings.data_dir / "outputs").glob("*.mp4"))
    assert loose_modes(settings.data_dir) == []
