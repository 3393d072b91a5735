"""Faults: a frame process that crashes, a disk that fills up during an encode, Redis stopped
in the middle of a job. Real worker processes, a real filesystem that fills, a real redis-server
stopped and started again on its append-only file."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.settings import Settings
from jobs.worker import in_process_worker
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from testkit.media import make_video, sha256
from testkit.sse import logged_events
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.oracle import judge_mask
from tests.pausing import catch_frame_process, frames_reported, frozen
from tests.processes import SpawnWorker, descendants, service_env, start_process
from tests.served import free_port

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


@pytest.fixture(scope="session")
def clip_6s(media_dir: Path) -> Path:
    """1280x720, 6 s, no audio, numbered: 150 frames, a job with room to be held in the middle."""
    return make_video(
        media_dir / "faults_6s.mp4", width=1280, height=720, seconds=6.0, audio=False, numbered=True
    )


def files_in(settings: Settings, folder: str) -> list[Path]:
    return sorted((settings.data_dir / folder).iterdir())


def temp_bytes(settings: Settings) -> int:
    """How much the jobs have written to their temporary files so far."""
    return sum(path.stat().st_size for path in files_in(settings, "tmp"))


# -------------------------------------------------------------------------------- a crash


async def test_a_crashing_frame_process_fails_its_task_alone(
    client: Client, settings: Settings, spawn_worker: SpawnWorker, clip_720p: Path
) -> None:
    """One job's frame process is killed by a real SIGSEGV (what a decoder reading out of bounds
    gets) while another job runs on the same worker process: the first ends FAILURE
    worker_crash, the other SUCCESS, and the worker is still alive and takes the next job.
    Both frame processes are held stopped until the signal is sent, so both jobs surely run."""
    first, second = await upload(client, clip_720p), await upload(client, clip_720p)
    steady = await submit_mask(client, first["id"], DEVICE_MASK)
    crashing = await submit_mask(client, second["id"], DEVICE_MASK)
    worker = spawn_worker()  # takes both at once
    async with frozen(settings.data_dir, first["id"]) as steady_frames:
        target = await catch_frame_process(settings.data_dir, second["id"])
        helpers = descendants(worker.pid)
        assert {steady_frames.pid, target.pid} <= set(helpers), "not both on this worker"
        target.send(signal.SIGSEGV)  # delivered when it runs again
        target.resume()

        crashed = (await follow_task(client, crashing, timeout=60))[-1]
        assert crashed["state"] == "FAILURE", crashed
        assert crashed["error"]["code"] == "worker_crash"
        assert "SIGSEGV" in crashed["error"]["message"]
        assert crashed["result"] is None
        running = await (await client.get(f"/api/task-status/{steady}/")).json()
        assert running["state"] in ("STARTED", "PROGRESS"), running
        assert steady_frames.alive()
    done = (await follow_task(client, steady, timeout=120))[-1]
    assert done["state"] == "SUCCESS", done
    assert done["result"]["verification"]["passed"]
    assert done["started_at"] < crashed["finished_at"] < done["finished_at"], "not concurrent"
    assert worker.poll() is None, "the worker process died"

    after = await submit_mask(client, first["id"], {**DEVICE_MASK, "shape": "ellipse"})
    final = (await follow_task(client, after, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    assert worker.poll() is None
    assert files_in(settings, "tmp") == []
    assert [p.name for p in files_in(settings, "outputs")] == sorted(
        [f"{steady}.mp4", f"{after}.mp4"]
    )
    judge_mask(
        await download(client, done, settings.data_dir / "steady.mp4"),
        clip_720p,
        DEVICE_MASK,
        numbered=True,
    )
    ellipse = {**DEVICE_MASK, "shape": "ellipse"}
    judge_mask(
        await download(client, final, settings.data_dir / "after.mp4"),
        clip_720p,
        ellipse,
        numbered=True,
    )


# ---------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted where the test's data dir goes (the test runs as root, as CI
    does); unmounted at the end."""
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Write a filler file that leaves about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler.bin"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


async def test_disk_full_during_encode_fails_with_no_space_and_keeps_the_original(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    small_disk: Path,
    clip_720p: Path,
    clip_odd: Path,
) -> None:
    settings = replace(settings, data_dir=small_disk)
    client = await aiohttp_client(create_app(settings))
    video = await upload(client, clip_720p)
    original = next((small_disk / "videos").rglob("original.*"))
    before = sha256(original)
    filler = fill(small_disk, leave=32 * 1024)  # the masked output needs about 100 KiB

    async with in_process_worker(settings):
        task_id = await submit_mask(client, video["id"], DEVICE_MASK)
        final = (await follow_task(client, task_id, timeout=60))[-1]
        assert final["state"] == "FAILURE", final
        assert final["error"]["code"] == "no_space"
        assert "ran out of storage space" in final["error"]["message"]
        assert sha256(original) == before
        assert files_in(settings, "tmp") == []
        assert files_in(settings, "outputs") == []

        # An upload that does not fit is refused as such, and nothing of it stays.
        resp = await client.post(
            "/api/videos/", data=clip_720p.read_bytes(), headers={"Content-Type": "video/mp4"}
        )
        assert "storage is full" in await expect_error(resp, 507, "no_space")
        assert files_in(settings, "tmp") == []

        filler.unlink()  # space is freed: the service works on
        status = await client.get(f"/api/task-status/{task_id}/")
        assert status.status == 200
        small = await upload(client, clip_odd)
        again = await follow_task(client, await submit_mask(client, small["id"], DEVICE_MASK))
        assert again[-1]["state"] == "SUCCESS", again[-1]
        output = await download(client, again[-1], small_disk.parent / "again.mp4")
        judge_mask(output, clip_odd, DEVICE_MASK, numbered=True)
    assert sha256(original) == before


# ------------------------------------------------------------------------- Redis goes away


@pytest.mark.parametrize("back", ["mid-job", "after-the-work"])
async def test_redis_stopped_mid_job_the_job_completes_with_a_consistent_record(
    aiohttp_client: AiohttpClient, tmp_path: Path, settings: Settings, clip_6s: Path, back: str
) -> None:
    """Redis stops while a worker process is encoding (its frame process is held stopped
    meanwhile, so the job surely still runs), and comes back on its append-only file while the
    job still runs (having encoded more frames during the outage), or only once its output is
    in place and its end waits to be recorded: either way the job finishes on its first
    attempt, its record says SUCCESS, its event log ends with one `end`, and there is exactly
    one output."""
    redis_dir = tmp_path / "redis"
    port = free_port()
    first = EmbeddedRedis(redis_dir, port=port, password="mid-job")
    second = EmbeddedRedis(redis_dir, port=port, password="mid-job")
    first.start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        settings = replace(settings, redis_url=first.url)
        client = await aiohttp_client(create_app(settings))
        video = await upload(client, clip_6s)
        worker = start_process(["worker"], service_env(settings), tmp_path / "worker.log")
        task_id = await submit_mask(client, video["id"], DEVICE_MASK)
        async with frozen(settings.data_dir, video["id"]) as frames:
            await frames.run_until(lambda: frames_reported(client, task_id))
            written = temp_bytes(settings)
            first.stop()
            if back == "mid-job":

                async def encoded_more() -> bool:
                    return temp_bytes(settings) > written

                await frames.run_until(encoded_more)  # the job works on through the outage
                assert frames.alive()
                assert files_in(settings, "outputs") == [], "the job should be running"
            else:
                frames.resume()
                output = settings.data_dir / "outputs" / f"{task_id}.mp4"
                for _ in range(1500):  # the output is committed before the end is recorded
                    if output.exists():
                        break
                    await asyncio.sleep(0.02)
                assert output.exists(), "the job never got to its end"
            await asyncio.sleep(1.0)  # the worker's publisher and supervisor meet the outage
            await expect_error(await client.get(f"/api/task-status/{task_id}/"), 503)
            second.start()

        final = (await follow_task(client, task_id, timeout=120))[-1]
        assert final["state"] == "SUCCESS", final
        assert final["attempt"] == 1
        assert final["result"]["verification"]["passed"]
        assert worker.poll() is None

        async with Redis.from_url(second.url) as redis:
            rows = await logged_events(redis, settings.keys, task_id)
        events = [row[1][b"event"].decode() for row in rows]
        assert events[-1] == "end"
        assert events.count("end") == 1
        assert json.loads(rows[-1][1][b"data"]) == final
        states = [json.loads(row[1][b"data"])["state"] for row in rows]
        assert states[:2] == ["PENDING", "STARTED"]
        assert "RETRY" not in states
        assert [p.name for p in files_in(settings, "outputs")] == [f"{task_id}.mp4"]
        assert files_in(settings, "tmp") == []
        output = await download(client, final, tmp_path / "out.mp4")
        judge_mask(output, clip_6s, DEVICE_MASK, numbered=True)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        first.stop()
        second.stop()
