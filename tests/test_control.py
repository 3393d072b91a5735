"""Cancel, time limits, lost and stopped workers: real worker processes, real Redis."""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from arq.jobs import Job
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient

from jobs.settings import Settings
from jobs.storage import Storage
from jobs.worker import in_process_worker
from server.app import create_app
from server.embedded_redis import EmbeddedRedis
from server.keys import SUBMITTER
from testkit.media import make_video
from tests.api import Client, download, expect_error, follow_task, submit_mask, upload
from tests.oracle import judge_mask
from tests.pausing import FrameProcess, catch_frame_process, frames_reported, frozen
from tests.processes import descendants

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}


@pytest.fixture(scope="session")
def long_clip(media_dir: Path) -> Path:
    """1280x720, 12 s, numbered: 300 frames, so that a job stopped a few frames in is surely
    mid-job."""
    return make_video(
        media_dir / "long.mp4", width=1280, height=720, seconds=12.0, audio=False, numbered=True
    )


async def wait_for(
    client: Client, task_id: str, states: set[str], timeout: float = 60, min_progress: int = 0
) -> dict[str, Any]:
    """Poll until the task is in one of ``states`` (with at least ``min_progress``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await (await client.get(f"/api/task-status/{task_id}/")).json()
        if status["state"] in states and status["progress"] >= min_progress:
            return dict(status)
        await asyncio.sleep(0.02)
    raise AssertionError(f"task never reached {states}; last {status}")


def temp_files(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "tmp").iterdir())


async def test_cancel_mid_job_stops_within_2s_and_cleans_up(
    client: Client, worker: Worker, settings: Settings, long_clip: Path
) -> None:
    """A job held stopped once it reports frames and writes its temp output (the MP4 file
    appears with the encoder's first packet, after its lookahead) is cancelled: REVOKED within
    2 s, its frame process killed, nothing left behind."""
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    async with frozen(settings.data_dir, video["id"]) as frames:

        async def writing() -> bool:
            return bool(temp_files(settings)) and await frames_reported(client, task_id)

        await frames.run_until(writing)
        asked = time.monotonic()
        resp = await client.post(f"/api/task-status/{task_id}/cancel/")
        assert resp.status == 202
        final = await wait_for(client, task_id, {"REVOKED", "SUCCESS", "FAILURE"}, timeout=10)
        took = time.monotonic() - asked
        assert not frames.alive(), "the cancel should have killed the frame process"
    assert final["state"] == "REVOKED"
    assert took <= 2.0, f"cancel took {took:.2f} s"
    print(f"cancel -> REVOKED {took:.2f} s")
    assert final["finished_at"]
    assert temp_files(settings) == []
    assert list((settings.data_dir / "outputs").iterdir()) == []
    body = await (await client.get(f"/api/task-status/{task_id}/events")).read()
    assert b"event: end" in body
    assert b'"REVOKED"' in body


async def test_cancel_queued_task_never_starts(
    client: Client, settings: Settings, clip_720p: Path
) -> None:
    """A task cancelled while it surely waits (no worker exists yet) is REVOKED at once; the
    worker that comes later takes its job off the queue and returns without starting it (the
    job's arq result says so), before it runs a task submitted after it."""
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    resp = await client.delete(f"/api/task-status/{task_id}/")
    assert resp.status == 202
    assert (await resp.json())["state"] == "REVOKED"
    later = await submit_mask(client, video["id"], {**DEVICE_MASK, "shape": "ellipse"})
    queue = client.app[SUBMITTER].redis
    assert await queue.zscore(settings.queue_name, task_id) is not None, "not queued"
    async with in_process_worker(replace(settings, max_jobs=1)):  # one job at a time, in order
        assert (await follow_task(client, later))[-1]["state"] == "SUCCESS"
    # The worker took the cancelled job first, and its run returned the state it found.
    taken = await Job(task_id, queue, _queue_name=settings.queue_name).result_info()
    assert taken is not None, "the worker never took the cancelled job"
    assert taken.success
    assert taken.result == "REVOKED"
    assert await queue.zscore(settings.queue_name, task_id) is None
    status = await (await client.get(f"/api/task-status/{task_id}/")).json()
    assert status["state"] == "REVOKED"
    assert status["started_at"] is None
    assert status["status"] == "Cancelled before it started"
    log = await (await client.get(f"/api/task-status/{task_id}/events?last_event_id=0-0")).read()
    assert b'"STARTED"' not in log


async def test_cancel_finished_task_is_409(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    final = (await follow_task(client, task_id))[-1]
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)
    message = await expect_error(
        await client.post(f"/api/task-status/{task_id}/cancel/"), 409, "already_finished"
    )
    assert "SUCCESS" in message
    await expect_error(await client.delete("/api/task-status/nope/"), 404, "task_not_found")


async def test_job_over_its_time_limit_fails_with_timeout(
    client: Client, settings: Settings, long_clip: Path
) -> None:
    """A job held stopped from its start outlasts its 1 s limit whatever the machine's speed
    (a floor rate so high that the video's length adds nothing to the limit)."""
    limited = replace(settings, job_timeout=1, timeout_floor_fps=1000)
    video = await upload(client, long_clip)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    async with in_process_worker(limited), frozen(settings.data_dir, video["id"]) as frames:
        final = (await follow_task(client, task_id))[-1]
        assert not frames.alive(), "the time limit should have killed the frame process"
    assert final["state"] == "FAILURE"
    assert final["error"]["code"] == "timeout"
    assert "1 s" in final["error"]["message"]
    assert temp_files(limited) == []


async def test_four_masks_at_once_all_finish(
    client: Client, settings: Settings, clip_720p: Path, clip_odd: Path
) -> None:
    four = replace(settings, max_jobs=4)
    videos = [await upload(client, clip) for clip in (clip_720p, clip_odd, clip_720p, clip_odd)]
    task_ids = [await submit_mask(client, v["id"], DEVICE_MASK) for v in videos]
    async with in_process_worker(four):
        # Each job is held as its frame process starts, until all four have one: they surely
        # run at the same time, however quickly the first would have finished.
        held = [await catch_frame_process(settings.data_dir, v["id"]) for v in videos]
        for frames in held:
            frames.resume()
        finals = await asyncio.gather(*(follow_task(client, t) for t in task_ids))
    for seen in finals:
        assert seen[-1]["state"] == "SUCCESS", seen[-1]
        assert seen[-1]["result"]["verification"]["passed"]
    starts = sorted(s[-1]["started_at"] for s in finals)
    ends = sorted(s[-1]["finished_at"] for s in finals)
    assert starts[-1] < ends[0], "the four jobs should have run at the same time"
    for index, (seen, clip) in enumerate(zip(finals, (clip_720p, clip_odd) * 2, strict=True)):
        output = await download(client, seen[-1], settings.data_dir / f"out-{index}.mp4")
        judge_mask(output, clip, DEVICE_MASK, numbered=True)


# ------------------------------------------------------------------------ worker processes


async def job_under_way(
    client: Client, settings: Settings, clip: Path, spawn_worker: Any
) -> tuple[str, subprocess.Popen[bytes], FrameProcess]:
    """A mask running on a worker process of its own, some frames done, its frame process
    held stopped (the caller resumes it)."""
    video = await upload(client, clip)
    process: subprocess.Popen[bytes] = spawn_worker()
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    frames = await catch_frame_process(settings.data_dir, video["id"])
    try:
        await frames.run_until(lambda: frames_reported(client, task_id))
    except BaseException:
        frames.resume()
        raise
    return task_id, process, frames


async def test_sigkilled_worker_task_is_finished_by_another(
    client: Client, settings: Settings, clip_720p: Path, spawn_worker: Any
) -> None:
    task_id, first, frames = await job_under_way(client, settings, clip_720p, spawn_worker)
    helpers = descendants(first.pid)  # the forkserver and the job's frame process among them
    assert len(helpers) >= 2, helpers
    assert frames.pid in helpers
    first.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    first.wait()
    frames.resume()  # it must notice its worker is gone, and end
    for _ in range(100):  # the frame process ends itself, then the forkserver
        if not any(Path(f"/proc/{pid}").exists() for pid in helpers):
            break
        await asyncio.sleep(0.05)
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists()], "orphans left"
    spawn_worker()
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = await (await client.get(f"/api/task-status/{task_id}/")).json()
        if status["attempt"] == 2:
            break
        await asyncio.sleep(0.05)
    noticed = time.monotonic() - killed
    assert status["attempt"] == 2, status
    assert noticed < 3 + 5, f"the lost worker was noticed after {noticed:.1f} s"
    final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] == 2
    assert final["result"]["verification"]["passed"]
    assert temp_files(settings) == []
    log = await (await client.get(f"/api/task-status/{task_id}/events?last_event_id=0-0")).read()
    assert b'"state": "RETRY"' in log
    assert b"worker was lost" in log
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)
    print(f"SIGKILL -> RETRY {noticed:.1f} s, -> SUCCESS {time.monotonic() - killed:.1f} s")


async def test_sigterm_hands_the_job_back_without_using_an_attempt(
    client: Client, settings: Settings, clip_720p: Path, spawn_worker: Any
) -> None:
    task_id, first, frames = await job_under_way(client, settings, clip_720p, spawn_worker)
    first.send_signal(signal.SIGTERM)
    try:
        assert first.wait(timeout=20) == 0
    finally:
        frames.resume()
    assert not frames.alive(), "the shutdown should have killed the frame process"
    handed_back = await (await client.get(f"/api/task-status/{task_id}/")).json()
    assert handed_back["state"] == "PENDING"
    assert handed_back["attempt"] == 1
    assert temp_files(settings) == []
    spawn_worker()
    final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] == 1
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)


async def test_service_and_worker_survive_a_redis_restart(
    aiohttp_client: AiohttpClient, tmp_path: Path, settings: Settings, clip_720p: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    redis_dir = tmp_path / "redis"
    first = EmbeddedRedis(redis_dir, port=port, password="restart")
    second = EmbeddedRedis(redis_dir, port=port, password="restart")
    first.start()
    try:
        restarted = replace(settings, redis_url=first.url)
        client = await aiohttp_client(create_app(restarted))
        async with in_process_worker(restarted):
            video = await upload(client, clip_720p)
            first.stop()
            await asyncio.sleep(1.5)  # the worker, the event reader and the pool all fail now
            await expect_error(await client.get("/api/videos/"), 503, "store_unavailable")
            second.start()  # same files, same port
            task_id = await submit_mask(client, video["id"], DEVICE_MASK)
            stream = await client.get(f"/api/task-status/{task_id}/events")
            final = (await follow_task(client, task_id))[-1]
            assert final["state"] == "SUCCESS", final
            assert b"event: end" in await stream.read()
            videos = await (await client.get("/api/videos/")).json()
            assert [v["id"] for v in videos["videos"]] == [video["id"]]
            output = await download(client, final, tmp_path / "out.mp4")
            judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)
    finally:
        first.stop()
        second.stop()


async def test_transient_storage_error_is_retried_with_backoff(
    client: Client,
    worker: Worker,
    settings: Settings,
    clip_720p: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A storage I/O error (injected once into the rename of the output) costs an attempt and
    a short wait, not the task."""
    real_commit = Storage.commit
    failures: list[str] = []

    def flaky_commit(self: Storage, temp: Path, name: str) -> Path:
        if not failures:
            failures.append(name)
            raise OSError(errno.EIO, "Input/output error")
        return real_commit(self, temp, name)

    video = await upload(client, clip_720p)
    monkeypatch.setattr(Storage, "commit", flaky_commit)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    seen = await follow_task(client, task_id, timeout=60)
    retry = [s for s in seen if s["state"] == "RETRY"]
    assert retry, "the task never showed RETRY"
    assert "transient error (Input/output error)" in retry[0]["status"]
    assert "attempt 2 of 3" in retry[0]["status"]
    final = seen[-1]
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] == 2
    assert failures == [f"outputs/{task_id}.mp4"]
    assert temp_files(settings) == []
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)


async def test_bad_video_fails_at_once_without_retry(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    next((settings.data_dir / "videos").rglob("original.*")).write_bytes(b"not a video any more")
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "FAILURE"
    assert final["attempt"] == 1
    assert final["error"]["code"] == "invalid_video"


async def test_redis_down_at_submission_runs_the_job_in_the_server(
    aiohttp_client: AiohttpClient, tmp_path: Path, settings: Settings, clip_720p: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", persist=False)
    redis.start()
    try:
        degraded = replace(settings, redis_url=redis.url, max_jobs=1)
        client = await aiohttp_client(create_app(degraded))
        video = await upload(client, clip_720p)
    finally:
        redis.stop()

    resp = await client.post(f"/api/video-apply-mask/{video['id']}/", json=DEVICE_MASK)
    answer = await resp.json()
    assert resp.status == 202, answer
    assert answer["mode"] == "local"
    first = answer["task_id"]
    assert first.startswith("local-")
    resp = await client.post(
        f"/api/video-apply-mask/{video['id']}/", json={**DEVICE_MASK, "shape": "ellipse"}
    )
    second = (await resp.json())["task_id"]

    stream = await client.get(f"/api/task-status/{first}/events?last_event_id=0-0")
    finals = [(await follow_task(client, task_id))[-1] for task_id in (first, second)]
    for final in finals:
        assert final["state"] == "SUCCESS", final
        assert final["mode"] == "local"
        assert final["result"]["verification"]["passed"]
    assert finals[0]["finished_at"] <= finals[1]["started_at"], "one job at a time (max_jobs=1)"
    body = await stream.read()
    assert body.count(b"event: end") == 1
    assert b'"state": "STARTED"' in body
    for final, asked in zip(
        finals, (DEVICE_MASK, {**DEVICE_MASK, "shape": "ellipse"}), strict=True
    ):
        output = await download(client, final, tmp_path / f"{final['task_id']}.mp4")
        judge_mask(output, clip_720p, asked, numbered=True)
    await expect_error(await client.get("/api/videos/"), 503, "store_unavailable")
