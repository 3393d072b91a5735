"""Provenance (issue 15): every task's result names the SHA-256 of the original it read and of
the output it published, and an original that changes while a job runs fails the task with
``source_changed`` and publishes nothing. hashlib is the independent judge of the bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from arq.worker import Worker
from redis.asyncio import Redis

from jobs.settings import Settings
from jobs.storage import Storage
from server.keys import RECORDS
from testkit.media import make_video
from tests.api import CUSTOM_MASK, EDITS, Client, download, follow_task, run_task, upload
from tests.pausing import frozen


@pytest.fixture(scope="session")
def clip(media_dir: Path) -> Path:
    """320x240, 2 s at 25 fps, H.264 + AAC."""
    return make_video(media_dir / "provenance.mp4", width=320, height=240, seconds=2.0)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(settings: Settings) -> list[Path]:
    folder = settings.data_dir / "outputs"
    return list(folder.iterdir()) if folder.exists() else []


async def test_upload_records_the_originals_sha256(client: Client, clip: Path) -> None:
    video = await upload(client, clip)
    assert video["sha256"] == sha256_of(clip)
    shown = await (await client.get(f"/api/videos/{video['id']}/")).json()
    assert shown["sha256"] == sha256_of(clip)


@pytest.mark.parametrize("operation", list(EDITS))
async def test_every_output_names_its_source_and_its_bytes(
    client: Client, worker: Worker, settings: Settings, clip: Path, operation: str
) -> None:
    video = await upload(client, clip)
    route, body = EDITS[operation]
    final = await run_task(client, route, video["id"], body)
    assert final["state"] == "SUCCESS", final
    output = await download(client, final, settings.data_dir / "downloaded.mp4")
    assert final["result"]["source_sha256"] == sha256_of(clip)
    assert final["result"]["output_sha256"] == sha256_of(output)
    # The hashing had a status of its own (the events after 0-0: every state it was in).
    events_url = f"/api/task-status/{final['task_id']}/events"
    events = await (await client.get(events_url, headers={"Last-Event-ID": "0-0"})).read()
    assert b'"status": "Checking the original"' in events


async def test_analysis_names_its_source(client: Client, worker: Worker, clip: Path) -> None:
    video = await upload(client, clip)
    final = await run_task(client, "video-analyze", video["id"], {})
    assert final["state"] == "SUCCESS", final
    assert final["result"]["source_sha256"] == sha256_of(clip)
    assert "output_sha256" not in final["result"]


@pytest.mark.parametrize("operation", ["mask", "analyze"])
async def test_an_original_changed_mid_job_fails_it_and_publishes_nothing(
    client: Client, worker: Worker, settings: Settings, clip: Path, operation: str
) -> None:
    """Bytes appended to the stored original while the job's frame process is held
    (tests.pausing): the job runs to its end, hashes the original again, and fails with
    source_changed; no output."""
    video = await upload(client, clip)
    route, body = EDITS["mask"] if operation == "mask" else ("video-analyze", {})
    resp = await client.post(f"/api/{route}/{video['id']}/", json=body)
    task_id = (await resp.json())["task_id"]
    original = Storage(settings.data_dir).videos_dir / str(video["id"]) / "original.mp4"
    async with frozen(settings.data_dir, video["id"]):
        with original.open("ab") as handle:
            handle.write(b"appended while the job ran")
    final = (await follow_task(client, task_id))[-1]
    assert final["state"] == "FAILURE", final
    assert final["error"]["code"] == "source_changed"
    assert "not published" in final["error"]["message"]
    assert final["result"] is None
    assert outputs(settings) == []
    assert list((settings.data_dir / "tmp").iterdir()) == []


async def test_a_video_recorded_without_sha256_still_works(
    client: Client, worker: Worker, settings: Settings, clip: Path
) -> None:
    """A record of an older version (no sha256, in Redis and in the sidecar) loads, shows null,
    and its tasks hash the original when they start."""
    video = await upload(client, clip)
    key = client.app[RECORDS].keys.video(video["id"])
    async with Redis.from_url(str(settings.redis_url)) as redis:
        old = json.loads(await redis.get(key))
        del old["sha256"]
        await redis.set(key, json.dumps(old))
    Storage(settings.data_dir).video_sidecar(video["id"]).write_text(json.dumps(old))
    shown = await (await client.get(f"/api/videos/{video['id']}/")).json()
    assert shown["sha256"] is None
    final = await run_task(client, "video-apply-mask", video["id"], CUSTOM_MASK)
    assert final["state"] == "SUCCESS", final
    output = await download(client, final, settings.data_dir / "downloaded.mp4")
    assert final["result"]["source_sha256"] == sha256_of(clip)
    assert final["result"]["output_sha256"] == sha256_of(output)
