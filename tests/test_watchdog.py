"""Stuck work and long work: the stall watchdog (a frame loop that reports nothing for
``VIDCORRECT_STALL_TIMEOUT`` is killed and its task retried as a lost attempt) and the time
limit scaled by the video's length (``VIDCORRECT_TIMEOUT_FLOOR_FPS``). Real worker processes,
real Redis; a hung frame process is a real one held with SIGSTOP (tests/pausing.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from jobs.errors import ConfigError, Stalled
from jobs.model import MAX_ATTEMPTS
from jobs.progress import FrameProgress, JobStopped
from jobs.settings import Settings
from jobs.worker import ARQ_TIMEOUT_MARGIN, in_process_worker, worker_options
from testkit.media import make_video
from tests.api import Client, download, follow_task, submit_mask, upload
from tests.oracle import judge_mask
from tests.pausing import (
    SCAN_INTERVAL,
    FrameProcess,
    catch_frame_process,
    frame_processes,
    frames_reported,
    frozen,
)
from tests.processes import SpawnWorker, descendants

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}
#: The stall timeout of the worker processes of these tests (seconds).
STALL = "3"


@pytest.fixture(scope="session")
def clip_300(media_dir: Path) -> Path:
    """1280x720, 12 s at 25 fps, numbered: 300 frames."""
    return make_video(
        media_dir / "watchdog_300.mp4",
        width=1280,
        height=720,
        seconds=12.0,
        audio=False,
        numbered=True,
    )


def temp_files(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "tmp").iterdir())


async def event_log(client: Client, task_id: str) -> bytes:
    resp = await client.get(f"/api/task-status/{task_id}/events?last_event_id=0-0")
    return await resp.read()


async def until_dead(process: FrameProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while process.alive():
        assert time.monotonic() < deadline, f"frame process {process.pid} was never killed"
        await asyncio.sleep(0.05)


async def hold_every_frame_process(data_dir: Path, video_id: int, held: list[FrameProcess]) -> None:
    """Until cancelled: stop every frame process on the video as soon as it appears."""
    while True:
        for pid in await asyncio.to_thread(frame_processes, data_dir, video_id):
            if pid not in {process.pid for process in held}:
                process = FrameProcess(pid)
                with contextlib.suppress(ProcessLookupError, AssertionError):  # it ended
                    process.stop()
                    held.append(process)
        await asyncio.sleep(SCAN_INTERVAL)


async def warmed_up(client: Client, clip: Path) -> None:
    """Run one mask to its end: the worker's forkserver has then loaded PyAV (on a loaded
    machine that takes seconds, longer than these tests' stall timeout)."""
    video = await upload(client, clip)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    assert (await follow_task(client, task_id, timeout=120))[-1]["state"] == "SUCCESS"


# ------------------------------------------------------------------------- the watchdog


def test_a_frame_loop_silent_too_long_is_stopped_as_stalled() -> None:
    now = [100.0]
    progress = FrameProgress(50, clock=lambda: now[0])
    now[0] += 2.5
    assert progress.idle_seconds() == 2.5  # counted from the start, before any frame
    progress(7)
    assert progress.idle_seconds() == 0
    now[0] += 4
    progress.stall(3)
    assert progress.stop
    with pytest.raises(Stalled) as caught:
        progress(7)  # what the loop (or its child's waiter) calls next
    assert caught.value.code == "stalled"
    assert "no progress for 3 s" in caught.value.message
    assert "frame 7 of 50" in caught.value.message


def test_a_cancelled_frame_loop_is_not_stalled() -> None:
    progress = FrameProgress(50)
    progress.stop = True
    with pytest.raises(JobStopped):
        progress(1)


async def test_a_hung_frame_process_is_killed_and_the_task_retried(
    client: Client, settings: Settings, clip_720p: Path, spawn_worker: SpawnWorker
) -> None:
    """The frame process of attempt 1 is stopped (SIGSTOP) a few frames in and left so: its
    worker stays alive and beating, its loop reports nothing. After the stall timeout the
    worker kills it and the task runs again as attempt 2, which succeeds."""
    worker = spawn_worker(VIDCORRECT_STALL_TIMEOUT=STALL)
    await warmed_up(client, clip_720p)
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    hung = await catch_frame_process(settings.data_dir, video["id"])
    try:
        await hung.run_until(lambda: frames_reported(client, task_id))
        assert hung.pid in descendants(worker.pid)
        final = (await follow_task(client, task_id, timeout=120))[-1]
        assert not hung.alive(), "the hung frame process should have been killed"
    finally:
        hung.resume()
    assert worker.poll() is None, "the worker itself goes on"
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] >= 2
    assert final["result"]["verification"]["passed"]
    assert temp_files(settings) == []
    log = await event_log(client, task_id)
    assert b'"state": "RETRY"' in log
    assert b"made no progress" in log
    assert b"worker was lost" not in log, "the worker beat all along: not a lost worker"
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)


async def test_a_task_that_hangs_on_every_attempt_fails_as_stalled(
    client: Client, settings: Settings, clip_720p: Path, spawn_worker: SpawnWorker
) -> None:
    """Every frame process of the task is stopped as soon as it appears: after MAX_ATTEMPTS
    the task fails with code ``stalled``, nothing left behind."""
    video = await upload(client, clip_720p)
    worker = spawn_worker(VIDCORRECT_STALL_TIMEOUT=STALL)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    held: list[FrameProcess] = []
    holder = asyncio.create_task(hold_every_frame_process(settings.data_dir, video["id"], held))
    try:
        final = (await follow_task(client, task_id, timeout=120))[-1]
        for process in held:
            await until_dead(process)
    finally:
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        for process in held:
            process.resume()
    assert held, "no frame process was ever held"
    assert worker.poll() is None
    assert final["state"] == "FAILURE", final
    assert final["attempt"] == MAX_ATTEMPTS
    assert final["error"]["code"] == "stalled"
    assert "no progress for 3 s" in final["error"]["message"]
    assert final["result"] is None
    assert temp_files(settings) == []
    assert list((settings.data_dir / "outputs").glob("*")) == []
    log = await event_log(client, task_id)
    assert log.count(b'"state": "RETRY"') == MAX_ATTEMPTS - 1


# --------------------------------------------------------------- the time limit by length


def test_the_time_limit_scales_with_the_frames() -> None:
    settings = Settings.from_env({})
    assert (settings.job_timeout, settings.timeout_floor_fps) == (3600, 5)
    assert settings.stall_timeout == 120
    assert settings.time_limit(0) == 3600
    assert settings.time_limit(5 * 3600) == 3600  # an hour at the floor rate: the minimum
    assert settings.time_limit(5 * 3600 + 1) == 3601  # rounded up
    assert settings.time_limit(60 * 60 * 50) == 36000  # an hour at 50 fps: 10 h at 5 fps
    assert settings.longest_time_limit == settings.time_limit(settings.max_video_frames)
    tuned = Settings.from_env(
        {
            "VIDCORRECT_JOB_TIMEOUT": "10",
            "VIDCORRECT_TIMEOUT_FLOOR_FPS": "25",
            "VIDCORRECT_STALL_TIMEOUT": "0",
        }
    )
    assert tuned.time_limit(100) == 10
    assert tuned.time_limit(1000) == 40
    assert tuned.stall_timeout == 0  # no watchdog
    with pytest.raises(ConfigError, match="VIDCORRECT_TIMEOUT_FLOOR_FPS must be at least 1"):
        Settings.from_env({"VIDCORRECT_TIMEOUT_FLOOR_FPS": "0"})
    with pytest.raises(ConfigError, match="VIDCORRECT_STALL_TIMEOUT must be a whole number"):
        Settings.from_env({"VIDCORRECT_STALL_TIMEOUT": "2m"})


@pytest.mark.parametrize(
    "settings_", [Settings(), Settings(job_timeout=7200, timeout_floor_fps=1, max_video_frames=10)]
)
def test_arq_never_stops_a_job_our_limit_allows(settings_: Settings) -> None:
    """arq's limit is one per function, fixed at start-up: above the limit of the longest
    video accepted."""
    options = worker_options(settings_)
    longest = settings_.time_limit(settings_.max_video_frames)
    assert options["job_timeout"] >= longest + ARQ_TIMEOUT_MARGIN
    assert options["functions"]
    for function in options["functions"]:
        assert function.timeout_s >= longest + ARQ_TIMEOUT_MARGIN


async def test_a_long_video_gets_more_than_the_job_timeout(
    client: Client, settings: Settings, clip_300: Path
) -> None:
    """job_timeout 1 s, but 300 frames at a floor of 1 fps give the job 300 s: held still for
    longer than 1 s, it still succeeds."""
    generous = replace(settings, job_timeout=1, timeout_floor_fps=1)
    video = await upload(client, clip_300)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    async with in_process_worker(generous):
        async with frozen(settings.data_dir, video["id"]):
            await asyncio.sleep(2)  # past job_timeout, well within the scaled limit
            status = await (await client.get(f"/api/task-status/{task_id}/")).json()
            assert status["state"] in ("STARTED", "PROGRESS"), status
        final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] == 1
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_300, DEVICE_MASK, numbered=True)


async def test_the_scaled_limit_still_stops_a_job(
    client: Client, settings: Settings, clip_300: Path
) -> None:
    """job_timeout 1 s, 300 frames at a floor of 100 fps: the limit is 3 s, and a job held
    still from its start fails at it, naming it."""
    limited = replace(settings, job_timeout=1, timeout_floor_fps=100)
    video = await upload(client, clip_300)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    async with in_process_worker(limited), frozen(settings.data_dir, video["id"]) as frames:
        final = (await follow_task(client, task_id, timeout=60))[-1]
        assert not frames.alive(), "the time limit should have killed the frame process"
    assert final["state"] == "FAILURE", final
    assert final["error"]["code"] == "timeout"
    assert "limit of 3 s" in final["error"]["message"]
    assert temp_files(limited) == []


async def test_a_lost_attempt_leaves_nothing_in_arqs_queue(
    client: Client, settings: Settings, clip_720p: Path, spawn_worker: SpawnWorker
) -> None:
    """arq's own limit is days long now (above the longest video's): the attempt of a worker
    SIGKILLed mid-job must not wait that long in its queue, counted as queued. Recovery takes
    it off when it re-queues the task."""
    video = await upload(client, clip_720p)
    first = spawn_worker()
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    async with frozen(settings.data_dir, video["id"]) as frames:
        await frames.run_until(lambda: frames_reported(client, task_id))
        first.send_signal(signal.SIGKILL)
        first.wait()
    spawn_worker()
    final = (await follow_task(client, task_id, timeout=120))[-1]
    assert final["state"] == "SUCCESS", final
    assert final["attempt"] == 2
    redis = Redis.from_url(str(settings.redis_url))
    try:
        assert await redis.zrange(settings.keys.queue, 0, -1) == []
        assert not await redis.exists(in_progress_key_prefix + task_id)
    finally:
        await redis.aclose()
    output = await download(client, final, settings.data_dir / "out.mp4")
    judge_mask(output, clip_720p, DEVICE_MASK, numbered=True)
