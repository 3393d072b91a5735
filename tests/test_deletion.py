"""Deleting patient data: DELETE of a video and of an output, the retention sweeps and the orphan
sweep at start-up. Real Redis, real workers; the data dir is walked to prove the bytes gone."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from arq.worker import Worker
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from jobs.deletion import delete_video
from jobs.errors import ConfigError
from jobs.job_run import JobDeps, JobRun
from jobs.memory_store import MemoryTaskStore
from jobs.model import JsonDict, Operation, TaskRecord, TaskState
from jobs.redis_store import RedisTaskStore
from jobs.retention import ORPHAN_MARGIN, sweep
from jobs.runner import run_task
from jobs.settings import Settings
from jobs.worker import in_process_worker
from server.app import create_app
from server.keys import RECORDS, STORAGE
from testkit.media import make_video
from tests.api import Client, expect_error, follow_task, submit_mask, upload
from tests.metrics import scrape
from tests.pausing import frames_reported, frozen

DEVICE_MASK = {"mask_type": "device", "device_name": "olympus_cv_1500"}
DAYS_AGO_2 = "2026-01-01T00:00:00.000Z"


@pytest.fixture(scope="session")
def long_clip(media_dir: Path) -> Path:
    """1280x720, 12 s: a job stopped a few frames in is surely mid-job."""
    return make_video(
        media_dir / "deletion-long.mp4", width=1280, height=720, seconds=12.0, audio=False
    )


def data_files(settings: Settings) -> Iterator[Path]:
    """Every file in the data dir."""
    for folder, _, names in os.walk(settings.data_dir):
        for name in names:
            yield Path(folder) / name


def holding(settings: Settings, original: bytes) -> list[Path]:
    """The files of the data dir that hold a slice of ``original``'s coded data."""
    middle = len(original) // 2
    piece = original[middle : middle + 4096]
    return [path for path in data_files(settings) if piece in path.read_bytes()]


def outputs(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "outputs").iterdir())


async def status(client: Client, task_id: str) -> dict[str, object]:
    resp = await client.get(f"/api/task-status/{task_id}/")
    assert resp.status == 200
    return dict(await resp.json())


async def test_deleting_a_video_removes_its_bytes_keeps_its_records_and_revokes_its_tasks(
    client: Client, settings: Settings, long_clip: Path
) -> None:
    """One task done (its output on disk), one running (held), one queued behind it: DELETE
    of the video answers 204, the running and the queued one end REVOKED, no file of the data
    dir holds the original's bytes and no output is left; the records stay, marked."""
    original = long_clip.read_bytes()
    video = await upload(client, long_clip)
    async with in_process_worker(replace(settings, max_jobs=1)):
        done = await submit_mask(client, video["id"], {**DEVICE_MASK, "blacken_frames": "0"})
        assert (await follow_task(client, done, timeout=120))[-1]["state"] == "SUCCESS"
        assert len(outputs(settings)) == 1
        assert holding(settings, original), "the test's probe should find the original"
        running = await submit_mask(client, video["id"], DEVICE_MASK)
        async with frozen(settings.data_dir, video["id"]) as frames:
            await frames.run_until(lambda: frames_reported(client, running))
            queued = await submit_mask(client, video["id"], {**DEVICE_MASK, "shape": "ellipse"})
            assert (await status(client, queued))["state"] == "PENDING"
            resp = await client.delete(f"/api/videos/{video['id']}/")
            assert resp.status == 204, await resp.text()
            assert not frames.alive(), "the deletion's cancel should have stopped the job"
        assert (await status(client, running))["state"] == "REVOKED"
        assert (await status(client, queued))["state"] == "REVOKED"
        await asyncio.sleep(0.5)  # a late write would land now
    assert holding(settings, original) == []
    assert outputs(settings) == []
    assert list((settings.data_dir / "tmp").iterdir()) == []
    assert not (settings.data_dir / "videos" / str(video["id"])).exists()
    await expect_error(await client.get(f"/api/videos/{video['id']}/"), 404, "video_not_found")
    await expect_error(await client.delete(f"/api/videos/{video['id']}/"), 404, "video_not_found")
    kept = await status(client, done)
    assert kept["state"] == "SUCCESS"
    result = kept["result"]
    assert isinstance(result, dict)
    assert "output_file" not in result
    assert "output_url" not in result
    assert result["output_deleted_at"]
    assert result["frames"] == video["frame_count"]  # the rest of the record is as it was
    await expect_error(await client.get(f"/api/tasks/{done}/output"), 404, "output_deleted")
    listed = await (await client.get(f"/api/tasks/?video_id={video['id']}")).json()
    assert {task["task_id"] for task in listed["tasks"]} == {done, running, queued}
    _, samples = await scrape(client)
    assert samples['vidcorrect_deleted_files_total{kind="original"}'] == 1
    assert samples['vidcorrect_deleted_files_total{kind="output"}'] == 1


async def test_deleting_an_output_keeps_the_video_and_the_record(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    task_id = await submit_mask(client, video["id"], DEVICE_MASK)
    assert (await follow_task(client, task_id))[-1]["state"] == "SUCCESS"
    assert len(outputs(settings)) == 1
    resp = await client.delete(f"/api/tasks/{task_id}/output")
    assert resp.status == 204, await resp.text()
    assert outputs(settings) == []
    await expect_error(await client.delete(f"/api/tasks/{task_id}/output"), 404, "output_deleted")
    await expect_error(await client.get(f"/api/tasks/{task_id}/output"), 404, "output_deleted")
    result = (await status(client, task_id))["result"]
    assert isinstance(result, dict)
    assert "output_url" not in result
    assert result["output_deleted_at"]
    shown = await (await client.get(f"/api/videos/{video['id']}/")).json()
    assert shown["outputs"] == []
    assert (await client.get(f"/api/videos/{video['id']}/file")).status == 200
    await expect_error(await client.delete("/api/tasks/nope/output"), 404, "task_not_found")
    _, samples = await scrape(client)
    assert samples['vidcorrect_deleted_files_total{kind="output"}'] == 1
    assert samples['vidcorrect_deleted_files_total{kind="original"}'] == 0


async def test_a_deletion_interrupted_after_the_record_went_is_finished_by_the_next(
    client: Client, settings: Settings, clip_720p: Path
) -> None:
    original = clip_720p.read_bytes()
    video = await upload(client, clip_720p)
    await client.app[RECORDS].delete_video(video["id"])  # as if the rest had failed
    assert holding(settings, original)
    resp = await client.delete(f"/api/videos/{video['id']}/")
    assert resp.status == 204, await resp.text()
    assert holding(settings, original) == []
    await expect_error(await client.delete(f"/api/videos/{video['id']}/"), 404, "video_not_found")


async def test_an_analysis_has_no_output_to_delete(
    client: Client, worker: Worker, clip_720p: Path
) -> None:
    video = await upload(client, clip_720p)
    resp = await client.post(f"/api/video-analyze/{video['id']}/", json={})
    task_id = (await resp.json())["task_id"]
    assert (await follow_task(client, task_id))[-1]["state"] == "SUCCESS"
    await expect_error(await client.delete(f"/api/tasks/{task_id}/output"), 409, "no_output")


async def test_a_commit_after_its_video_was_deleted_does_not_publish(
    client: Client, settings: Settings, clip_720p: Path
) -> None:
    """A job that did not stop in time: its output is committed after the deletion has come
    and gone; the run finds the video gone, takes the output back and ends REVOKED."""
    video = await upload(client, clip_720p)
    records, storage = client.app[RECORDS], client.app[STORAGE]
    task = TaskRecord(task_id="late0123", operation=Operation.MASK, video_id=video["id"], params={})
    await records.create_task(task)

    async def late(run: JobRun) -> JsonDict:
        temp = run.temp_path(".mp4")
        temp.write_bytes(b"output")
        await records.delete_video(video["id"])  # the deletion, while the job encodes
        return {"output_file": await run.commit(temp, storage.output_name(task.task_id))}

    with ThreadPoolExecutor(1) as executor:
        deps = JobDeps(settings, records, storage, None, executor)
        assert await run_task({"deps": deps}, task.task_id, 1, late) == "REVOKED"
    assert outputs(settings) == []
    assert list((settings.data_dir / "tmp").iterdir()) == []
    final = await records.get_task(task.task_id)
    assert final.state is TaskState.REVOKED
    assert final.result is None


async def test_retention_deletes_old_originals_and_outputs_only(
    client: Client, worker: Worker, settings: Settings, clip_720p: Path, clip_odd: Path
) -> None:
    """With a retention of one day, the sweep deletes the original uploaded (by its record)
    two days ago, with its video, but not its output, which has its own retention, and the
    output finished two days ago; a fresh video and output stay."""
    records, storage = client.app[RECORDS], client.app[STORAGE]
    old_video = await upload(client, clip_720p)
    fresh_video = await upload(client, clip_odd)
    old_task = await submit_mask(client, old_video["id"], DEVICE_MASK)
    fresh_task = await submit_mask(client, fresh_video["id"], DEVICE_MASK)
    for task_id in (old_task, fresh_task):
        assert (await follow_task(client, task_id))[-1]["state"] == "SUCCESS"
    await records.save_video(
        replace(await records.get_video(old_video["id"]), created_at=DAYS_AGO_2)
    )
    old_output = await records.get_task(old_task)
    await records.update_task(old_output, finished_at=DAYS_AGO_2)
    short = replace(settings, original_retention_days=1, output_retention_days=1)
    deleted = await sweep(records, storage, short)
    assert deleted == {"original": 1, "output": 1}
    await expect_error(await client.get(f"/api/videos/{old_video['id']}/"), 404)
    assert (await client.get(f"/api/videos/{fresh_video['id']}/")).status == 200
    assert [p.name for p in outputs(settings)] == [f"{fresh_task}.mp4"]
    old_result = (await status(client, old_task))["result"]
    assert isinstance(old_result, dict)
    assert "output_deleted_at" in old_result
    assert (await client.get(f"/api/tasks/{fresh_task}/output")).status == 200
    assert await sweep(records, storage, short) == {}  # nothing more to delete
    assert await sweep(records, storage, settings) == {}  # 0 days: keep


async def test_orphans_are_swept_at_start_up_but_not_fresh_or_running_files(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    """A temp file older than the longest job goes at start-up; a fresh one stays, and so does
    an old one of a task that is running (in the heartbeat set)."""
    tmp = settings.data_dir / "tmp"
    tmp.mkdir(parents=True)
    old, fresh, running = tmp / "deadbeef-1.mp4.part", tmp / "cafe-2.mp4.part", tmp / "run-3.part"
    for path in (old, fresh, running):
        path.write_bytes(b"partial")
    past = time.time() - settings.job_timeout - ORPHAN_MARGIN - 60
    for path in (old, running):
        os.utime(path, (past, past))
    assert settings.redis_url is not None
    async with Redis.from_url(settings.redis_url) as redis:
        await RedisTaskStore(redis, settings.keys).heartbeat("run")
        client = await aiohttp_client(create_app(settings))
    deadline = time.monotonic() + 10
    while old.exists():
        assert time.monotonic() < deadline, "the start-up sweep did not remove the orphan"
        await asyncio.sleep(0.05)
    assert fresh.exists()
    assert running.exists()
    _, samples = await scrape(client)
    assert samples['vidcorrect_deleted_files_total{kind="orphan"}'] == 1


def test_retention_settings_are_whole_days() -> None:
    settings = Settings.from_env(
        {"VIDCORRECT_ORIGINAL_RETENTION_DAYS": "30", "VIDCORRECT_OUTPUT_RETENTION_DAYS": "0"}
    )
    assert (settings.original_retention_days, settings.output_retention_days) == (30, 0)
    assert Settings().original_retention_days == Settings().output_retention_days == 0
    for bad in ("1.5", "-1", "a week"):
        with pytest.raises(ConfigError, match="VIDCORRECT_OUTPUT_RETENTION_DAYS"):
            Settings.from_env({"VIDCORRECT_OUTPUT_RETENTION_DAYS": bad})


async def test_deleting_a_video_also_deletes_the_outputs_of_its_local_tasks(
    client: Client, settings: Settings, clip_720p: Path
) -> None:
    """A task the server ran itself while Redis was away (in its memory store) made an output
    of the video: deleting the video deletes it too and marks that record."""
    video = await upload(client, clip_720p)
    records, storage = client.app[RECORDS], client.app[STORAGE]
    local = MemoryTaskStore(storage)
    name = storage.output_name("local-0123")
    task = TaskRecord(
        task_id="local-0123",
        operation=Operation.MASK,
        video_id=video["id"],
        params={},
        state=TaskState.SUCCESS,
        result={"output_file": name, "frames": 50},
        mode="local",
    )
    await local.create_task(task)
    storage.resolve(name).write_bytes(b"masked")
    deleted = await delete_video(records, [records, local], storage, video["id"])
    assert deleted == Counter(original=1, output=1)
    assert outputs(settings) == []
    result = (await local.get_task("local-0123")).result
    assert result is not None
    assert "output_file" not in result
    assert result["output_deleted_at"]
